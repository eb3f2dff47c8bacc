"""The Bradley-Terry judge over explicit rewards (papers/digest.md A11): closed form and antisymmetry."""

import math

import numpy as np
import pytest

from mtpo_jax.envs.negotiation import NegotiationEnv, ScriptedSeller, rollout, sale_price, sample_contexts
from mtpo_jax.oracles.bradley_terry import BradleyTerryRewardJudge, sigmoid
from mtpo_jax.types import Context, Conversation, Turn


def sold_at(context_id, price):
  ctx = Context(context_id, {}, {})
  if price is None:
    return Conversation(ctx, (Turn("seller", "It's $30,000.", True), Turn("buyer", "No thanks.", False)), True)
  return Conversation(ctx, (Turn("seller", f"It's ${price:,}.", True), Turn("buyer", f"Deal! ${price:,}.", False)),
                      True)


def test_closed_form_against_hand_computation():
  judge = BradleyTerryRewardJudge(sale_price, scale=1000.0)
  a = [sold_at("c0", 25000), sold_at("c1", 20000), sold_at("c2", 24000), sold_at("c3", None)]
  b = [sold_at("c0", 24000), sold_at("c1", 20000), sold_at("c2", 26500), sold_at("c3", 1000)]
  # sigmoid(1) = 1 / (1 + e^-1); sigmoid(0) = 1/2; sigmoid(-2.5); no sale (0) vs 1,000: sigmoid(-1).
  want = [1 / (1 + math.exp(-1)), 0.5, 1 / (1 + math.exp(2.5)), 1 / (1 + math.exp(1))]
  np.testing.assert_allclose(judge.preference(a, b), want, rtol=1e-12)
  np.testing.assert_allclose(judge.preference(a, b)[0], 0.7310585786300049, rtol=1e-12)
  # The paper's unscaled form saturates for prices in dollars.
  np.testing.assert_allclose(BradleyTerryRewardJudge(sale_price).preference(a[:1], b[:1]), [1.0])


def test_antisymmetric_on_generated_episodes():
  contexts, env = sample_contexts(64, seed=2), NegotiationEnv()
  a = rollout(env, ScriptedSeller("consultative"), contexts)
  b = rollout(env, ScriptedSeller("pushover"), contexts)
  judge = BradleyTerryRewardJudge(sale_price, scale=2000.0)
  p_ab, p_ba = judge.preference(a, b), judge.preference(b, a)
  np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-15)
  np.testing.assert_allclose(judge.preference(a, a), 0.5)
  assert p_ab.dtype == np.float64 and p_ab.mean() > 0.6


def test_sigmoid_is_stable_and_antisymmetric():
  x = np.array([-1e6, -50.0, -1.0, 0.0, 1.0, 50.0, 1e6])
  p = sigmoid(x)
  assert np.all(np.isfinite(p)) and p[0] == 0.0 and p[-1] == 1.0
  np.testing.assert_array_equal(p + sigmoid(-x), 1.0)


def test_rejects_mismatched_pairs_and_bad_scale():
  judge = BradleyTerryRewardJudge(sale_price)
  with pytest.raises(ValueError, match="different contexts"):
    judge.preference([sold_at("c0", 1000)], [sold_at("c1", 1000)])
  with pytest.raises(ValueError, match="scale"):
    BradleyTerryRewardJudge(sale_price, scale=0.0)
