"""Many ways to say each negotiation move, and the per-turn random generator that picks among them.

`turn_rng(seed, role, context_id, num_turns)` depends only on its arguments, so a conversation gets the same words
whichever batch position or process produces it. Every buyer template that accepts contains one of the phrases
`reward.is_acceptance` looks for, and no other buyer template does.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from mtpo_jax.envs.negotiation.prices import format_price
from mtpo_jax.types import END_OF_CONVERSATION

END = " " + END_OF_CONVERSATION

SELLER: dict[str, tuple[str, ...]] = {
    "greet": ("Hi there, welcome in! I see you're looking at the {car}.",
              "Good afternoon! Thanks for stopping by. This {car} just came in.",
              "Hello! Great choice, the {car} is one of our most popular models.",
              "Welcome! Let me tell you a bit about this {car}."),
    "ask_needs": ("What are you looking for in a car, and what budget do you have in mind?",
                  "Before we talk numbers, what matters most to you in your next car? Do you have a budget?",
                  "Tell me a little about what you need. Any must-have features? What price range are you hoping for?",
                  "What brings you in today? What's important to you, and what are you hoping to spend?"),
    "features": ("It has {features}, just like you wanted.", "Good news: this one comes with {features}.",
                 "You'll love it: {features}, all included.", "It's equipped with {features}."),
    "anchor": ("Given its condition, I'm asking {price}.", "The price on this one is {price}.",
               "For a car like this, {price} is a very fair price.", "We have it listed at {price}."),
    "concede": ("I hear you. I can come down to {price}.", "Let me talk to my manager... okay, I can do {price}.",
                "How about we meet closer to the middle: {price}?", "I can't go that low, but {price} is doable.",
                "Tell you what, {price} and it's yours."),
    "firm": ("This car is worth every penny. The price is {price}, and that's firm.",
             "I can knock a little off: {price}. That's really the best I can do.",
             "Cars like this sell fast. {price}, take it or leave it.",
             "I really can't move much. {price} is my final number."),
    "meet": ("You drive a hard bargain. {price} it is, if you're ready.", "Alright, I can accept {price}.",
             "Okay, {price} works for me."),
    "lowball": ("Honestly, I just want to move it. You can have it for {price}.",
                "I'll make it easy: {price}, no haggling.", "I'm feeling generous today. How about {price}?"),
    "answer_feature": ("Yes, it does have {feature}.", "It sure has {feature}.", "Absolutely, {feature} is included."),
    "ask_offer": ("What would you be willing to pay?", "Make me an offer.", "What number did you have in mind?"),
}

BUYER: dict[str, tuple[str, ...]] = {
    "reveal": ("I really want {features}. I'd like to stay around {hint}.",
               "I need something with {features}, and my budget is about {hint}.",
               "{features} would be ideal. I was hoping to spend around {hint}.",
               "Mostly {features}. Price-wise, somewhere near {hint} would be great."),
    "ask_price": ("So what are you asking for it?", "What's the price on this one?", "How much is it?",
                  "Okay, and what would it cost me?"),
    "ask_feature": ("Does it have {feature}?", "Does this one come with {feature}?",
                    "Before we talk price, does it have {feature}?"),
    "counter": ("That's more than I want to pay. Would you take {price}?", "Hmm. I was thinking more like {price}.",
                "Could you do {price}?", "That's too high for me. I can offer {price}.",
                "I've seen similar cars for less. {price} is what I can do."),
    "counter_feature": ("Does it even have {feature}? I'd go up to {price} at most.",
                        "I'm not sure it has what I need, like {feature}. I'll offer {price}."),
    "accept": ("Deal! I'll take it for {price}.", "You've got a deal at {price}.",
               "{price} works for me. It's a deal.", "Alright, I'll take it at {price}.",
               "That's fair. I'll buy it for {price}."),
    "walk_no_price": ("I don't have all day. I'll look somewhere else.",
                      "You still haven't told me the price. I think I'll leave."),
    "walk_too_high": ("That's way over what I can afford. I'm going to pass.",
                      "Wow, that's far too expensive for me. Thanks, but no thanks.",
                      "That price is out of my league. Have a good day."),
    "walk_patience": ("We're too far apart. I'm going to keep looking.", "I can't go that high. I'll pass, thanks.",
                      "Sorry, that's still more than I'm willing to spend. Goodbye."),
    "ack": ("Good to know. What's your best price, then?", "Okay. So what's the number?",
            "Nice. And the price?"),
}


def turn_rng(*keys: object) -> random.Random:
  """A generator seeded by a stable hash of `keys` (not Python's salted `hash`)."""
  digest = hashlib.blake2b(repr(keys).encode("utf-8"), digest_size=8).digest()
  return random.Random(int.from_bytes(digest, "little"))


def join_features(features: Sequence[str]) -> str:
  features = list(features)
  if len(features) <= 1:
    return "".join(features)
  return ", ".join(features[:-1]) + " and " + features[-1]


def say(rng: random.Random, table: dict[str, tuple[str, ...]], kind: str, *, price: float | None = None,
        hint: float | None = None, **fields: object) -> str:
  """One template of `kind` filled in; prices are written in a random one of `format_price`'s styles."""
  template = rng.choice(table[kind])
  if price is not None:
    fields["price"] = format_price(price, rng.randrange(4))
  if hint is not None:
    fields["hint"] = format_price(hint, rng.randrange(4))
  text = template.format(**fields)
  return text[:1].upper() + text[1:]


def car_name(car: dict) -> str:
  return f"{car['year']} {car['make']} {car['model']}"
