"""What a negotiation episode is about: the car on the lot and the buyer's hidden budget, wants and personality.

A context's `visible` fields are what the seller (the agent) sees: `{"car": {...}}`. Its `hidden` fields are the
buyer's: `{"budget", "wanted_features", "personality"}`. All values are JSON-native (the records round-trip).
"""

from __future__ import annotations

import dataclasses
import random

from mtpo_jax.types import Context

# Feature name -> phrases that count as the seller mentioning it (lower case, matched on word boundaries).
FEATURES: dict[str, tuple[str, ...]] = {
    "backup camera": ("backup camera", "rear camera", "rearview camera", "back-up camera"),
    "sunroof": ("sunroof", "moonroof", "sun roof"),
    "leather seats": ("leather seats", "leather interior", "leather"),
    "heated seats": ("heated seats", "seat heaters", "heated front seats"),
    "all-wheel drive": ("all-wheel drive", "all wheel drive", "awd"),
    "apple carplay": ("apple carplay", "carplay"),
    "good fuel economy": ("fuel economy", "mpg", "fuel efficient", "gas mileage"),
    "third-row seating": ("third-row", "third row", "seven seats", "7 seats"),
    "blind-spot monitoring": ("blind-spot", "blind spot"),
    "remote start": ("remote start", "remote starter"),
    "towing package": ("towing package", "tow package", "tow hitch"),
    "keyless entry": ("keyless entry", "keyless", "push-button start", "push button start"),
}

# (make, model, body style, typical price of a recent used one in dollars)
CARS: tuple[tuple[str, str, str, int], ...] = (
    ("Honda", "Civic", "sedan", 23000), ("Toyota", "Camry", "sedan", 26000), ("Toyota", "RAV4", "SUV", 30000),
    ("Ford", "F-150", "pickup", 41000), ("Subaru", "Outback", "wagon", 29000), ("Mazda", "CX-5", "SUV", 27000),
    ("Hyundai", "Elantra", "sedan", 20000), ("Kia", "Telluride", "SUV", 38000),
    ("Chevrolet", "Malibu", "sedan", 22000), ("Tesla", "Model 3", "sedan", 35000),
    ("Jeep", "Wrangler", "SUV", 34000), ("Volkswagen", "Jetta", "sedan", 21000),
    ("Nissan", "Rogue", "SUV", 25000), ("Honda", "Odyssey", "minivan", 33000),
)


@dataclasses.dataclass(frozen=True)
class Personality:
  """How a scripted buyer bargains; all prices are fractions of its budget (papers/digest.md A11 has none of this:
  the paper uses LMRL-Gym's learned buyer, we script one).

  start/step: its k-th counter-offer is budget * (start + k * step), capped at its reservation price.
  tolerance: it accepts an offer up to (1 + tolerance) x its current counter.
  patience: after this many counters it takes any offer at or below its reservation price, or walks away.
  unaddressed: its reservation price is budget * unaddressed until the seller has mentioned all its wanted
  features (budget otherwise), so it never pays more than its budget.
  hint: the budget it admits to when asked about its needs.
  walk_ratio: it leaves at once when offered more than budget * walk_ratio.
  """
  start: float
  step: float
  tolerance: float
  patience: int
  unaddressed: float
  hint: float
  walk_ratio: float


PERSONALITIES: dict[str, Personality] = {
    "impulsive": Personality(0.88, 0.04, 0.04, 2, 0.97, 0.95, 1.6),
    "friendly": Personality(0.85, 0.04, 0.03, 3, 0.95, 0.90, 1.5),
    "tough negotiator": Personality(0.76, 0.03, 0.01, 4, 0.92, 0.80, 1.4),
    "skeptical": Personality(0.80, 0.03, 0.02, 3, 0.85, 0.85, 1.3),
}


def round_down(price: float, unit: int = 100) -> int:
  return int(price // unit * unit)


def sample_context(rng: random.Random, context_id: str) -> Context:
  """One car and one buyer. The budget is 80-105% of the list price; the wanted features are on the car."""
  make, model, body, typical = rng.choice(CARS)
  year = rng.randint(2016, 2024)
  list_price = round_down(typical * rng.uniform(0.75, 1.15) * (1 - 0.04 * (2024 - year)) + 99)
  features = sorted(rng.sample(sorted(FEATURES), rng.randint(3, 6)))
  car = {"make": make, "model": model, "year": year, "body": body, "list_price": list_price,
         "mileage": rng.randint(5, 90) * 1000, "color": rng.choice(["white", "black", "silver", "blue", "red", "gray"]),
         "features": features}
  hidden = {"budget": round_down(list_price * rng.uniform(0.80, 1.05)),
            "wanted_features": sorted(rng.sample(features, rng.randint(1, 2))),
            "personality": rng.choice(sorted(PERSONALITIES))}
  return Context(context_id, visible={"car": car}, hidden=hidden)


def sample_contexts(n: int, seed: int = 0) -> list[Context]:
  """n contexts, ids "car-{seed}-{i:06d}", deterministic by seed."""
  rng = random.Random(seed)
  return [sample_context(rng, f"car-{seed}-{i:06d}") for i in range(n)]
