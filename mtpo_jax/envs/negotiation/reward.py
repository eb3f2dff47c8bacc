"""The explicit reward of the negotiation environment: the sale price, read from the conversation text alone
(papers/digest.md A11: the paper has a prompted Flan-T5 read it; we use rules; 0 without a sale).

A sale happens at the first buyer turn that accepts ("Deal!", "I'll take it", "you've got a deal", ...) and does
not refuse ("no deal", "can't", "too high"). Its price is the last price in that turn, else the last price the
seller named before it. Only the buyer can close a sale; a seller saying "sold!" is not one.
"""

from __future__ import annotations

import re

from mtpo_jax.envs.negotiation.prices import last_price
from mtpo_jax.types import END_OF_CONVERSATION, Conversation

_ACCEPT = re.compile(r"\b(?:deal\b\s*[!.]|it'?s a deal|(?:you'?ve )?got a deal|we have a deal|"
                     r"i'?ll take it|i will take it|i'?ll buy it|i will buy it)", re.IGNORECASE)
_REFUSE = re.compile(r"\b(?:no deal|not a deal|can'?t|cannot|won'?t|too (?:high|much|expensive)|pass)\b",
                     re.IGNORECASE)
OUTCOMES = ("sale", "walk_away", "seller_ended", "turn_limit", "ongoing")


def is_acceptance(text: str) -> bool:
  """Whether a buyer turn accepts an offer."""
  return bool(_ACCEPT.search(text)) and not _REFUSE.search(text)


def sale(conversation: Conversation) -> tuple[bool, float]:
  """(whether a sale happened, its price in dollars; 0.0 without a sale or a readable price)."""
  offered = None
  for turn in conversation.turns:
    if turn.is_agent:
      offered = last_price(turn.text) or offered
    elif is_acceptance(turn.text):
      price = last_price(turn.text) or offered
      return True, float(price or 0.0)
  return False, 0.0


def sale_price(conversation: Conversation) -> float:
  """The reward: the price the buyer agreed to, 0.0 without a sale."""
  return sale(conversation)[1]


def outcome(conversation: Conversation) -> str:
  """How the episode ended: "sale", "walk_away" (buyer said END), "seller_ended", "turn_limit" (done without
  either) or "ongoing"."""
  if sale(conversation)[0]:
    return "sale"
  for turn in conversation.turns:
    if END_OF_CONVERSATION in turn.text:
      return "seller_ended" if turn.is_agent else "walk_away"
  return "turn_limit" if conversation.done else "ongoing"
