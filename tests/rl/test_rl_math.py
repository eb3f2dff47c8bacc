"""RL math against numbers computed by hand (each expected value is worked out in the comment beside it)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax.rl import advantages as adv
from mtpo_jax.rl import kl, losses


def test_turn_gae_by_hand():
  # gamma=1, lam=0.5, V=(.5,.6,.7), terminal reward 1:
  # deltas = (.6-.5, .7-.6, 1-.7) = (.1,.1,.3); A2=.3; A1=.1+.5*.3=.25; A0=.1+.5*.25=.225
  a, ret = adv.turn_gae(jnp.array([[0.0, 0.0, 1.0]]), jnp.array([[0.5, 0.6, 0.7]]), jnp.ones((1, 3)), 1.0, 0.5)
  np.testing.assert_allclose(a, [[0.225, 0.25, 0.3]], atol=1e-6)
  np.testing.assert_allclose(ret, [[0.725, 0.85, 1.0]], atol=1e-6)


def test_turn_gae_respects_padding_and_discount():
  # Row of 2 real turns and garbage padding: gamma=.9, lam=1, V=(.2,.4):
  # d1 = 1 - .4 = .6 (no value after the last real turn); d0 = .9*.4 - .2 = .16; A0 = .16 + .9*.6 = .7
  r = jnp.array([[0.0, 1.0, 5.0]])
  v = jnp.array([[0.2, 0.4, 9.0]])
  m = jnp.array([[1.0, 1.0, 0.0]])
  a, ret = adv.turn_gae(r, v, m, 0.9, 1.0)
  np.testing.assert_allclose(a, [[0.7, 0.6, 0.0]], atol=1e-6)
  # With lam=1 the value targets are the Monte-Carlo returns: G1 = 1, G0 = .9.
  np.testing.assert_allclose(ret, [[0.9, 1.0, 0.0]], atol=1e-6)
  np.testing.assert_allclose(adv.discounted_returns(r, m, 0.9), [[0.9, 1.0, 0.0]], atol=1e-6)


def test_discounted_returns_by_hand():
  # gamma=.5, r=(1,2,3): G2=3, G1=2+1.5=3.5, G0=1+1.75=2.75
  np.testing.assert_allclose(adv.discounted_returns(jnp.array([[1.0, 2.0, 3.0]]), jnp.ones((1, 3)), 0.5),
                             [[2.75, 3.5, 3.0]], atol=1e-6)


def test_normalize_and_explained_variance():
  x = jnp.array([[1.0, 2.0, 3.0, 100.0]])
  m = jnp.array([[1.0, 1.0, 1.0, 0.0]])
  s = np.sqrt(2 / 3)  # population std of (1,2,3)
  np.testing.assert_allclose(adv.normalize(x, m), [[-1 / s, 0.0, 1 / s, 0.0]], atol=1e-5)
  t = jnp.array([[1.0, 2.0, 3.0, 0.0]])
  assert float(adv.explained_variance(t, t, m)) == pytest.approx(1.0)
  # Predicting the mean explains nothing; predicting (1,2,2): residual var of (0,0,1) = 2/9, target var 2/3.
  assert float(adv.explained_variance(jnp.full((1, 4), 2.0), t, m)) == pytest.approx(0.0, abs=1e-6)
  assert float(adv.explained_variance(jnp.array([[1.0, 2.0, 2.0, 7.0]]), t, m)) == pytest.approx(1 - (2 / 9) / (2 / 3))


def test_token_kl_by_hand():
  # p = (.5,.5), q = (.75,.25): KL = .5 ln(.5/.75) + .5 ln(.5/.25) = .5 ln(4/3)
  p = jnp.array([[[0.0, 0.0], [0.0, 0.0]]])
  q = jnp.array([[[np.log(3.0), 0.0], [0.0, 0.0]]])
  out = kl.token_kl(p, q, jnp.array([[1.0, 1.0]]))
  np.testing.assert_allclose(out, [[0.5 * np.log(4 / 3), 0.0]], atol=1e-6)
  assert float(kl.sequence_kl(p, q, jnp.array([[1.0, 0.0]]))[0]) == pytest.approx(0.5 * np.log(4 / 3), rel=1e-5)
  np.testing.assert_allclose(kl.token_logprobs(q, jnp.array([[0, 1]])), [[np.log(0.75), np.log(0.5)]], atol=1e-6)


def test_mtpo_policy_loss_by_hand_and_gradient():
  logp = jnp.array([[-1.0, -2.0]])
  a = jnp.array([[0.5, -1.0]])
  k = jnp.array([[0.1, 0.2]])
  m = jnp.ones((1, 2))
  # per turn: -A logp + alpha KL = (0.5 + 0.01, -2 + 0.02); mean = -0.735
  assert float(losses.mtpo_policy_loss(logp, a, k, m, alpha=0.1)) == pytest.approx(-0.735)
  g_logp, g_adv = jax.grad(losses.mtpo_policy_loss, argnums=(0, 1))(logp, a, k, m, 0.1)
  np.testing.assert_allclose(g_logp, [[-0.25, 0.5]])  # -A / n
  np.testing.assert_allclose(g_adv, [[0.0, 0.0]])  # advantages are constants


def test_value_loss_masks():
  v = jnp.array([[1.0, 2.0, 50.0]])
  t = jnp.array([[0.0, 4.0, 0.0]])
  assert float(losses.value_loss(v, t, jnp.array([[1.0, 1.0, 0.0]]))) == pytest.approx((1 + 4) / 2)


@pytest.mark.parametrize("logp, advantage, expected, clipped", [
    (np.log(1.5), 1.0, -1.2, 1.0),   # ratio 1.5, A>0: min(1.5, 1.2) = 1.2
    (np.log(1.5), -1.0, 1.5, 1.0),   # ratio 1.5, A<0: min(-1.5, -1.2) = -1.5
    (np.log(0.5), 1.0, -0.5, 1.0),   # ratio 0.5, A>0: min(0.5, 0.8) = 0.5
    (np.log(1.1), 2.0, -2.2, 0.0),   # inside the trust region: plain ratio * A
])
def test_ppo_clip_by_hand(logp, advantage, expected, clipped):
  loss, frac = losses.ppo_clip_loss(jnp.array([[logp]]), jnp.zeros((1, 1)), jnp.array([advantage]),
                                    jnp.ones((1, 1)), 0.2)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  assert float(frac) == clipped


def test_bradley_terry_by_hand():
  # -log sigmoid(1) = ln(1 + e^-1); soft label .5 averages it with -log sigmoid(-1) = ln(1 + e)
  one = np.log1p(np.exp(-1.0))
  assert float(losses.bradley_terry_loss(jnp.array([1.0]), jnp.array([0.0]), jnp.array([1.0]))) == pytest.approx(one)
  half = 0.5 * (one + np.log1p(np.e))
  assert float(losses.bradley_terry_loss(jnp.array([1.0]), jnp.array([0.0]), jnp.array([0.5]))) == pytest.approx(half)


def test_preference_regression_losses():
  target = jnp.array([0.8])
  # Cross-entropy is minimised exactly at logit(0.8) = ln 4.
  g = jax.grad(lambda z: losses.preference_regression_loss(z, target))(jnp.array([np.log(4.0)]))
  assert abs(float(g[0])) < 1e-6
  assert float(losses.preference_regression_loss(jnp.array([0.0]), target, "squared")) == pytest.approx(0.09)
  with pytest.raises(ValueError, match="unknown preference loss"):
    losses.preference_regression_loss(jnp.array([0.0]), target, "hinge")


def test_pair_rewards_by_hand():
  from mtpo_jax.rl import rewards
  scores = rewards.pair_scores(np.array([0.8, 0.3]), np.array([[0, 2], [1, 3]]), 4)
  np.testing.assert_allclose(scores, [0.8, 0.3, 0.2, 0.7], atol=1e-7)
  mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]])
  r = rewards.terminal_rewards(scores, mask)
  np.testing.assert_allclose(r, [[0, 0.8, 0], [0.3, 0, 0], [0, 0, 0.2], [0, 0, 0]], atol=1e-7)
  with pytest.raises(ValueError, match="in no pair"):
    rewards.pair_scores(np.array([0.5]), np.array([[0, 1]]), 3)
  spread = rewards.preference_spread(np.array([0.5, 1.0, 0.0, 0.75]))
  assert spread["preference_spread"] == pytest.approx((0 + 0.5 + 0.5 + 0.25) / 4)
  assert spread["preference_saturated"] == pytest.approx(0.5)
