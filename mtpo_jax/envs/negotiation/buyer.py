"""A scripted buyer: the environment side of the negotiation (`Student` protocol), reacting to free-form seller text.

The buyer's move is a pure function of its hidden fields and the conversation text (`decide`); only the wording is
random, from `phrasing.turn_rng`. It reads the seller's latest offer (the last price in the seller's last turn),
checks whether the seller has mentioned all of its wanted features, and then accepts, counters or walks away by
its `Personality`. It never accepts an offer above its budget.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from mtpo_jax.envs.negotiation import phrasing
from mtpo_jax.envs.negotiation.catalog import FEATURES, PERSONALITIES, round_down
from mtpo_jax.envs.negotiation.prices import format_price, last_price
from mtpo_jax.types import Context, Conversation, Turn

_ASKS_NEEDS = re.compile(r"\b(?:looking for|need|important|matters|must-have|budget|price range|hoping|"
                         r"what brings|tell me)\b", re.IGNORECASE)
MAX_TURNS_WITHOUT_PRICE = 3

BUYER_SYSTEM_PROMPT = """\
You are role-playing a customer at a used-car dealership, talking to a salesperson about a {car} listed at {price}.
Your budget is {budget}; never agree to pay more than that. You want a car with {features}. Your personality:
{personality}. Do not reveal your exact budget. Reply with your next message only, never the seller's lines.
If you accept an offer, say "Deal!" and repeat the price. If you decide to leave, end your message with
"[end of conversation]"."""


@dataclasses.dataclass(frozen=True)
class Move:
  """What the buyer does next: kind in {"reveal", "ask_price", "ask_feature", "counter", "counter_feature",
  "accept", "walk_no_price", "walk_too_high", "walk_patience", "ack"}; `price` for counters and accepts."""
  kind: str
  price: float | None = None
  feature: str | None = None


def mentions(text: str, feature: str) -> bool:
  """Whether `text` mentions `feature` by any of its phrases."""
  return any(re.search(rf"\b{re.escape(p)}\b", text, re.IGNORECASE) for p in FEATURES[feature])


def reservation_price(hidden: dict, seller_text: str) -> float:
  """The most the buyer will pay: its budget once the seller has mentioned all its wanted features, less before."""
  addressed = all(mentions(seller_text, f) for f in hidden["wanted_features"])
  return float(hidden["budget"]) * (1.0 if addressed else PERSONALITIES[hidden["personality"]].unaddressed)


def counter_offer(hidden: dict, k: int, reservation: float) -> float:
  """The buyer's k-th counter-offer (k = 0, 1, ...), rising towards its reservation price."""
  pers = PERSONALITIES[hidden["personality"]]
  return float(round_down(min(reservation, hidden["budget"] * (pers.start + k * pers.step))))


def decide(context: Context, turns: Sequence[Turn]) -> Move:
  """The buyer's next move after a seller turn (the last of `turns`)."""
  hidden = context.hidden
  pers = PERSONALITIES[hidden["personality"]]
  seller = [t.text for t in turns if t.is_agent]
  buyer = [t.text for t in turns if not t.is_agent]
  if not seller or not turns[-1].is_agent:
    raise ValueError(f"context {context.context_id!r}: the buyer replies to a seller turn")
  offers = [last_price(s) for s in seller]
  unaddressed = [f for f in hidden["wanted_features"] if not mentions(" ".join(seller), f)]
  offer = offers[-1]
  if offer is None:
    return _no_offer(hidden, seller, buyer, offers, unaddressed)
  reservation = reservation_price(hidden, " ".join(seller))
  k = sum(o is not None for o in offers[:-1])  # counters already made
  counter = counter_offer(hidden, k, reservation)
  if offer > hidden["budget"] * pers.walk_ratio:
    return Move("walk_too_high")
  if offer <= reservation and (offer <= counter * (1 + pers.tolerance) or k >= pers.patience):
    return Move("accept", offer)
  if k >= pers.patience:
    return Move("walk_patience")
  if unaddressed and k == 0:
    return Move("counter_feature", counter, unaddressed[0])
  return Move("counter", counter)


def _no_offer(hidden: dict, seller: list[str], buyer: list[str], offers: list, unaddressed: list[str]) -> Move:
  """The move when the seller's last turn names no price."""
  revealed = any(all(f in b for f in hidden["wanted_features"]) for b in buyer)
  if not revealed and "?" in seller[-1] and _ASKS_NEEDS.search(seller[-1]):
    return Move("reveal")
  recent = offers[-MAX_TURNS_WITHOUT_PRICE:]
  if len(recent) == MAX_TURNS_WITHOUT_PRICE and all(o is None for o in recent):
    return Move("walk_no_price")
  if any(o is not None for o in offers):
    return Move("ack")
  if unaddressed and not any(unaddressed[0] in b for b in buyer):
    return Move("ask_feature", feature=unaddressed[0])
  return Move("ask_price")


def render(move: Move, context: Context, rng) -> str:
  """The words for a move; accepts and walk-aways end the conversation."""
  hidden = context.hidden
  fields = {"feature": move.feature, "features": phrasing.join_features(hidden["wanted_features"])}
  if move.kind == "reveal":
    hint = round_down(hidden["budget"] * PERSONALITIES[hidden["personality"]].hint)
    return phrasing.say(rng, phrasing.BUYER, "reveal", hint=hint, **fields)
  text = phrasing.say(rng, phrasing.BUYER, move.kind, price=move.price, **fields)
  return text + phrasing.END if move.kind == "accept" or move.kind.startswith("walk") else text


def buyer_system_prompt(context: Context) -> str:
  """Instructions for an LLM-played buyer (`EndpointStudent(client, system_prompt=buyer_system_prompt,
  own_name="Buyer", other_name="Seller")`): the car, and the buyer's hidden budget, wants and personality."""
  car, hidden = context.visible["car"], context.hidden
  return BUYER_SYSTEM_PROMPT.format(car=phrasing.car_name(car), price=format_price(car["list_price"]),
                                    budget=format_price(hidden["budget"]), personality=hidden["personality"],
                                    features=phrasing.join_features(hidden["wanted_features"]))


class ScriptedBuyer:
  """`Student` for the negotiation environment; deterministic given `seed` and each conversation."""

  def __init__(self, seed: int = 0):
    self.seed = seed

  def reply(self, conversations: Sequence[Conversation]) -> list[str]:
    out = []
    for c in conversations:
      move = decide(c.context, c.turns)
      out.append(render(move, c.context, phrasing.turn_rng(self.seed, "buyer", c.context.context_id, len(c.turns))))
    return out
