"""Negotiation text rules: price parsing, acceptance detection and the sale-price reward (text only)."""

import pytest

from mtpo_jax.envs.negotiation import format_price, is_acceptance, last_price, outcome, parse_prices, sale_price
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation, Turn


@pytest.mark.parametrize("text, want", [
    ("$23,500", [23500.0]), ("23500", [23500.0]), ("23.5k", [23500.0]), ("$24K, final.", [24000.0]),
    ("24 grand", [24000.0]), ("23,500 dollars", [23500.0]), ("$23,500.00", [23500.0]), ("$ 19,900", [19900.0]),
    ("between $20k and 22k", [20000.0, 22000.0]), ("$20k-$22k", [20000.0, 22000.0]),
    ("a 2019 Civic with 35,000 miles for $18,900.", [18900.0]), ("50000-mile warranty", []), ("30 mpg", []),
    ("5% off", []), ("F-150", []), ("Model 3", []), ("in 2021 I paid 2,019 dollars", [2019.0]),
    ("no numbers here", []), ("$500 off", []), ("23.5 km away", []),
])
def test_parse_prices(text, want):
  assert parse_prices(text) == want


def test_last_price_is_the_offer():
  assert last_price("The sticker says $30,000, but for you 27.5k.") == 27500.0
  assert last_price("What's the price?") is None


@pytest.mark.parametrize("price", [1000, 19900, 23500, 23450, 100000])
def test_format_price_round_trips_in_every_style(price):
  for style in range(4):
    assert parse_prices(format_price(price, style)) == [float(price)]


@pytest.mark.parametrize("text, want", [
    ("Deal! I'll take it for $23,500.", True), ("You've got a deal at 23.5k.", True), ("It's a deal.", True),
    ("Alright, I'll take it at $20,000.", True), ("That's fair. I'll buy it for 19900.", True),
    ("No deal. That's too high.", False), ("I can't take it at that price.", False),
    ("Is that a good deal?", False), ("That would be ideal.", False), ("Could you do $20,000?", False),
    ("I'll pass, thanks.", False),
])
def test_is_acceptance(text, want):
  assert is_acceptance(text) == want


def negotiation(*texts, done=True):
  ctx = Context("car-x", {"car": {}}, {"budget": 25000, "wanted_features": [], "personality": "friendly"})
  turns = tuple(Turn("seller" if i % 2 == 0 else "buyer", t, i % 2 == 0) for i, t in enumerate(texts))
  return Conversation(ctx, turns, done)


def test_sale_price_reads_the_accepted_price():
  c = negotiation("It's $26,000.", "Could you do $22,000?", "I can do 24.5k.", "Deal! $24,500 it is.")
  assert sale_price(c) == 24500.0 and outcome(c) == "sale"
  # An acceptance without a price takes the seller's last offer.
  assert sale_price(negotiation("It's $26,000.", "Too much.", "Fine, $25,000.", "Deal.")) == 25000.0
  # Only the first acceptance counts.
  assert sale_price(negotiation("$20,000?", "Deal! $20,000.", "Actually $30,000.", "Deal! $30,000.")) == 20000.0


def test_reward_is_zero_without_a_sale():
  assert sale_price(negotiation()) == 0.0
  walked = negotiation("It's $40,000.", f"Too expensive for me. {END_OF_CONVERSATION}")
  assert sale_price(walked) == 0.0 and outcome(walked) == "walk_away"
  # The seller cannot close a sale on its own.
  claimed = negotiation("Deal! Sold to you at $30,000.", "Could you do $20,000?", done=False)
  assert sale_price(claimed) == 0.0 and outcome(claimed) == "ongoing"
  assert outcome(negotiation("Bye. " + END_OF_CONVERSATION)) == "seller_ended"
  assert outcome(negotiation("It's $30,000.", "Hmm.")) == "turn_limit"
