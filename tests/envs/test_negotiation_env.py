"""The negotiation environment: generated data, the scripted buyer, env API and the reward ordering of sellers."""

import json
import random

import numpy as np
import pytest

from mtpo_jax.envs.negotiation import (PERSONALITIES, STRATEGIES, NegotiationEnv, ScriptedBuyer, ScriptedSeller,
                                       conversation_to_record, decide, format_price, generate_dataset, load_json,
                                       outcome, record_to_conversation, rollout, sale_price, sample_contexts,
                                       save_json)
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation, Turn


# GENERATED DATA

def test_generator_is_deterministic_by_seed():
  a, b, c = generate_dataset(40, seed=3), generate_dataset(40, seed=3), generate_dataset(40, seed=4)
  assert json.dumps(a) == json.dumps(b) and json.dumps(a) != json.dumps(c)


def test_records_follow_the_schema_and_round_trip(tmp_path):
  records = generate_dataset(60, seed=0)
  save_json(records, str(tmp_path / "negotiation.json"))
  loaded = load_json(str(tmp_path / "negotiation.json"))
  assert loaded == records
  for r in loaded:
    assert set(r) == {"id", "background_info", "conversation", "ground_truth"}
    info = r["background_info"]
    assert {"car", "buyer_budget", "buyer_wanted_features", "buyer_personality", "seller_strategy"} <= set(info)
    assert set(info["buyer_wanted_features"]) <= set(info["car"]["features"])
    assert r["conversation"][0]["role"] == "Seller"
    assert [t["role"] for t in r["conversation"]] == ["Seller", "Buyer"] * (len(r["conversation"]) // 2)
    conv = record_to_conversation(r)
    assert conversation_to_record(conv) == r
    assert record_to_conversation(conversation_to_record(conv)) == conv
    assert r["ground_truth"]["sale_price"] == sale_price(conv)
    assert r["ground_truth"]["sale"] == (r["ground_truth"]["outcome"] == "sale")
  assert {r["background_info"]["seller_strategy"] for r in loaded} == set(STRATEGIES)
  assert {r["ground_truth"]["outcome"] for r in loaded} >= {"sale", "walk_away"}


def test_generated_conversations_use_many_phrasings():
  records = generate_dataset(200, seed=1)
  openers = {r["conversation"][0]["text"] for r in records}
  buyer_lines = {t["text"] for r in records for t in r["conversation"] if t["role"] == "Buyer"}
  assert len(openers) > 60 and len(buyer_lines) > 300


def test_conversion_rejects_foreign_roles():
  ctx = sample_contexts(1)[0]
  with pytest.raises(ValueError, match="teacher"):
    conversation_to_record(Conversation(ctx, (Turn("teacher", "hi", True),)))


# SCRIPTED BUYER

def buyer_context(budget=20000, personality="friendly", wanted=("sunroof",)):
  car = {"make": "Honda", "model": "Civic", "year": 2020, "body": "sedan", "list_price": 22000,
         "mileage": 30000, "color": "red", "features": ["backup camera", "sunroof"]}
  return Context("car-test", {"car": car}, {"budget": budget, "wanted_features": list(wanted),
                                            "personality": personality})


def seller_says(ctx, *texts):
  """A conversation whose seller turns are `texts`, with the scripted buyer's real replies in between."""
  conv, buyer = Conversation(ctx), ScriptedBuyer()
  for text in texts:
    conv = conv.append(Turn("seller", text, True))
    conv = conv.append(Turn("buyer", buyer.reply([conv])[0], False))
  return conv


@pytest.mark.parametrize("offer", ["$17,500", "17500", "17.5k", "17,500 dollars", "17.5 grand", "$17.5K"])
def test_buyer_reads_free_form_prices(offer):
  ctx = buyer_context(budget=20000, personality="impulsive")  # first counter 17,600: takes anything up to it
  conv = seller_says(ctx, f"It has a sunroof and only 30,000 miles. For you, {offer}.")
  assert sale_price(conv) == 17500.0 and outcome(conv) == "sale"


def test_buyer_counters_accepts_and_walks_away():
  ctx = buyer_context(budget=20000, personality="friendly")
  assert decide(ctx, (Turn("seller", "What are you looking for, and what's your budget?", True),)).kind == "reveal"
  assert decide(ctx, (Turn("seller", "Nice weather today.", True),)).kind == "ask_feature"
  move = decide(ctx, (Turn("seller", "It has a sunroof. It's $23,000.", True),))
  assert (move.kind, move.price) == ("counter", 17000.0)  # 0.85 * budget
  assert decide(ctx, (Turn("seller", "It's $35,000.", True),)).kind == "walk_too_high"  # > 1.5 * budget
  assert decide(ctx, (Turn("seller", "It has a sunroof, $17,400.", True),)).kind == "accept"  # within 3%
  # Without the sunroof mentioned it will not pay its full budget, however patient the seller.
  conv = seller_says(ctx, "It's $20,000.", "It's $20,000.", "It's $20,000.", "It's $20,000.")
  assert sale_price(conv) == 0.0 and outcome(conv) == "walk_away"
  conv = seller_says(ctx, "It has a sunroof. $20,000.", "$20,000.", "$20,000.", "$20,000.")
  assert sale_price(conv) == 20000.0


def test_buyer_walks_away_from_a_seller_who_never_names_a_price():
  conv = seller_says(buyer_context(), "Hello!", "Lovely car.", "Really lovely.")
  assert conv.turns[-1].text.endswith(END_OF_CONVERSATION) and sale_price(conv) == 0.0


class RandomSeller:
  """Free-form, adversarial seller text: random prices in random formats, false claims of a sale, chit-chat."""

  def __init__(self, seed):
    self.rng = random.Random(seed)

  def act(self, conversations):
    out = []
    for c in conversations:
      budget, r = c.context.hidden["budget"], self.rng.random()
      price = format_price(round(budget * self.rng.uniform(0.6, 1.4), -2), self.rng.randrange(4))
      feature = self.rng.choice(c.context.visible["car"]["features"])
      out.append(self.rng.choice([f"Deal! Sold to you at {price}.", f"It has {feature}. {price}?",
                                  f"I could do {price}.", "What do you need?", f"Best price: {price}, firm."])
                 if r > 0.05 else "Never mind. " + END_OF_CONVERSATION)
    return out


@pytest.mark.parametrize("seller", [ScriptedSeller(s) for s in STRATEGIES] + [RandomSeller(0)],
                         ids=list(STRATEGIES) + ["random"])
def test_buyer_never_pays_above_its_budget(seller):
  contexts = sample_contexts(150, seed=7)
  convs = rollout(NegotiationEnv(max_agent_turns=6), seller, contexts)
  prices = np.array([sale_price(c) for c in convs])
  budgets = np.array([c.hidden["budget"] for c in contexts])
  assert np.all(prices <= budgets) and np.all(prices >= 0)
  assert all(c.done for c in convs)


# SELLER QUALITY

def test_better_sellers_earn_more():
  contexts, env = sample_contexts(200, seed=11), NegotiationEnv()
  mean = {s: env.reward(rollout(env, ScriptedSeller(s), contexts)).mean() for s in STRATEGIES}
  budget = np.mean([c.hidden["budget"] for c in contexts])
  # consultative about 0.9 of the budget on average, pushover about 0.8, hardball nothing.
  assert mean["consultative"] > mean["pushover"] + 0.05 * budget
  assert mean["consultative"] > mean["list_price"] + 0.05 * budget
  assert mean["consultative"] > mean["hardball"] + 0.5 * budget


# ENVIRONMENT API

def test_env_done_handling():
  env, ctx = NegotiationEnv(max_agent_turns=2), buyer_context()
  convs = env.reset([ctx, ctx, ctx])
  assert env.agent_role == "seller" and all(not c.turns and not c.done for c in convs)
  convs, done = env.step(convs, [f"Goodbye. {END_OF_CONVERSATION}", "It has a sunroof. $17,000.", "It's $21,000."])
  assert done.tolist() == [True, True, False]
  assert len(convs[0].turns) == 1  # the buyer does not answer a seller who ended it
  assert sale_price(convs[1]) == 17000.0 and len(convs[1].turns) == 2
  before = convs[0]
  convs, done = env.step(convs, ["ignored", "ignored", "It's $21,000."])
  assert convs[0] is before and done.tolist() == [True, True, True]  # turn limit; done ones pass through
  assert convs[2].num_agent_turns == 2 and not convs[2].turns[-1].is_agent  # the last offer was answered
  with pytest.raises(ValueError, match="agent turns"):
    env.step(convs, ["x"])


def test_env_is_deterministic_whatever_the_batch_order():
  contexts = sample_contexts(24, seed=5)
  seller = ScriptedSeller("consultative")
  forward = rollout(NegotiationEnv(seed=2), seller, contexts)
  order = np.random.default_rng(0).permutation(len(contexts))
  shuffled = rollout(NegotiationEnv(seed=2), seller, [contexts[i] for i in order])
  by_id = {c.context.context_id: c for c in shuffled}
  assert all(by_id[c.context.context_id] == c for c in forward)
  other_seed = rollout(NegotiationEnv(seed=3), seller, contexts)
  assert [c.turns for c in other_seed] != [c.turns for c in forward]  # the seed changes the buyer's words


def test_every_personality_can_be_sold_to():
  contexts = sample_contexts(200, seed=9)
  convs = rollout(NegotiationEnv(), ScriptedSeller("consultative"), contexts)
  sold = {c.context.hidden["personality"] for c in convs if sale_price(c) > 0}
  assert sold == set(PERSONALITIES)
