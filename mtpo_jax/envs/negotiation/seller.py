"""Scripted sellers of varying skill: the agents that generate the negotiation data and baseline the environment.

Strategies (papers/digest.md A11 trains a dealer on LMRL-Gym data; these play its role here):
- "consultative" (good): asks about needs first, mentions the wanted features the buyer named, anchors just
  above the buyer's hinted budget and concedes half the gap each round.
- "list_price" (fair): names the list price at once, never asks, splits the difference.
- "hardball" (bad, too high): opens 15% above list and barely moves.
- "pushover" (bad, too low): opens far below list and gives in to the buyer's first counter.
A seller reads only its visible context (the car) and the conversation text.
"""

from __future__ import annotations

from typing import Sequence

from mtpo_jax.envs.negotiation import phrasing
from mtpo_jax.envs.negotiation.buyer import mentions
from mtpo_jax.envs.negotiation.catalog import FEATURES, round_down
from mtpo_jax.envs.negotiation.prices import last_price
from mtpo_jax.types import Context, Conversation, Turn

STRATEGIES = ("consultative", "list_price", "hardball", "pushover")
GOOD, BAD = ("consultative",), ("hardball", "pushover")


def _gap_offer(previous: float, counter: float | None, floor: float, share: float) -> float:
  """Concede `share` of the gap between our previous offer and the buyer's counter, never below `floor`."""
  if counter is None:
    return previous
  if previous - counter <= 300:
    return max(floor, round_down(counter))
  return max(floor, round_down(previous - share * (previous - counter)))


def seller_move(context: Context, turns: Sequence[Turn], strategy: str, rng) -> str:
  """The seller's next turn under `strategy`."""
  car = context.visible["car"]
  list_price = float(car["list_price"])
  buyer = [t.text for t in turns if not t.is_agent]
  own = [last_price(t.text) for t in turns if t.is_agent]
  previous = next((p for p in reversed(own) if p is not None), None)
  counter = last_price(buyer[-1]) if buyer else None
  wanted = [f for f in sorted(FEATURES) if any(mentions(b, f) for b in buyer) and f in car["features"]]
  say = lambda kind, **kw: phrasing.say(rng, phrasing.SELLER, kind, car=phrasing.car_name(car), **kw)
  if strategy == "consultative":
    if not turns:
      return say("greet") + " " + say("ask_needs")
    if previous is None:
      anchor = min(list_price, round_down(counter * 1.2)) if counter else list_price
      lead = say("features", features=phrasing.join_features(wanted)) + " " if wanted else ""
      return lead + say("anchor", price=anchor)
    return _respond(say, previous, counter, floor=round_down(0.8 * list_price), share=0.5)
  if strategy == "list_price":
    if previous is None:
      return (say("greet") + " " if not turns else "") + say("anchor", price=list_price)
    return _respond(say, previous, counter, floor=round_down(0.8 * list_price), share=0.5, wanted=wanted)
  if strategy == "hardball":
    if previous is None:
      return (say("greet") + " " if not turns else "") + say("anchor", price=round_down(1.15 * list_price))
    return say("firm", price=max(list_price, round_down(previous - 0.01 * list_price)))
  if strategy == "pushover":
    if previous is None:
      return (say("greet") + " " if not turns else "") + say("lowball", price=round_down(0.75 * list_price))
    return say("meet", price=counter) if counter else say("lowball", price=previous)
  raise ValueError(f"unknown seller strategy {strategy!r}; known: {STRATEGIES}")


def _respond(say, previous: float, counter: float | None, *, floor: float, share: float,
             wanted: Sequence[str] = ()) -> str:
  """A concession (or agreement to the buyer's counter) after the buyer answered our offer."""
  if counter is None:
    lead = say("answer_feature", feature=wanted[0]) + " " if wanted else ""
    return lead + say("anchor", price=previous)
  offer = _gap_offer(previous, counter, floor, share)
  if offer <= counter:
    return say("meet", price=offer)
  lead = say("answer_feature", feature=wanted[0]) + " " if wanted else ""
  return lead + say("concede", price=offer)


class ScriptedSeller:
  """An agent policy: `act(conversations) -> seller turns`. The strategy is `strategy`, else each context's
  `extra["seller_strategy"]`. Deterministic given `seed` and each conversation."""

  def __init__(self, strategy: str | None = None, seed: int = 0):
    if strategy is not None and strategy not in STRATEGIES:
      raise ValueError(f"unknown seller strategy {strategy!r}; known: {STRATEGIES}")
    self.strategy, self.seed = strategy, seed

  def act(self, conversations: Sequence[Conversation]) -> list[str]:
    out = []
    for c in conversations:
      strategy = self.strategy or c.context.extra["seller_strategy"]
      rng = phrasing.turn_rng(self.seed, "seller", c.context.context_id, len(c.turns))
      out.append(seller_move(c.context, c.turns, strategy, rng))
    return out
