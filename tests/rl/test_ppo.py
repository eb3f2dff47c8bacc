"""Iterative PPO's pure math (rl/ppo.py) against hand and numpy computations: the clipped loss's gradient, the
Q input, the Q regression losses, and one whole PPO step against the vanilla policy-gradient update."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.text.vocabulary import EOS_ID, PAD_ID
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import actor_critic as ac
from mtpo_jax.rl import losses, ppo
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.training.state import TrainState

LR = 0.1
CONFIG = tiny_config()
POLICY, VALUE = T5(CONFIG), T5Value(CONFIG)
# Jitted once: eager Flax applies dispatch op by op and are slow on a busy CPU.
apply_policy = jax.jit(lambda p, enc, dec: POLICY.apply({"params": p}, enc, dec))
apply_value = jax.jit(lambda p, ids: VALUE.apply({"params": p}, ids))


def jitted_step(hp: ppo.PPOHParams):
  return jax.jit(functools.partial(ppo.ppo_step, hp=hp, policy=POLICY, value=VALUE, policy_tx=optax.sgd(LR),
                                   value_tx=optax.sgd(LR)))


def test_clipped_loss_gradient_at_ratio_one_is_the_vanilla_policy_gradient():
  rng = np.random.default_rng(0)
  logp = rng.normal(size=(3, 4)).astype(np.float32)
  adv = np.array([1.5, -0.5, 2.0], np.float32)
  mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], np.float32)
  grad = jax.grad(lambda lp: losses.ppo_clip_loss(lp, jnp.asarray(logp), jnp.asarray(adv), jnp.asarray(mask))[0])(
      jnp.asarray(logp))
  np.testing.assert_allclose(grad, -adv[:, None] * mask / mask.sum(), rtol=1e-6)  # d/dlogp of -mean(A logp)
  # Token 0 of row 0 at ratio e^0.5 > 1.2 with A > 0 is clipped: no gradient there, and it counts as clipped.
  moved = logp.copy()
  moved[0, 0] += 0.5
  loss, clip = losses.ppo_clip_loss(jnp.asarray(moved), jnp.asarray(logp), jnp.asarray(adv), jnp.asarray(mask))
  grad = jax.grad(lambda lp: losses.ppo_clip_loss(lp, jnp.asarray(logp), jnp.asarray(adv), jnp.asarray(mask))[0])(
      jnp.asarray(moved))
  assert float(grad[0, 0]) == 0.0 and float(clip) == pytest.approx(1 / 9)
  expected = -(1.2 * 1.5 + sum(a * m for a, m in zip(np.repeat(adv, 4), mask.ravel())) - 1.5) / 9
  assert float(loss) == pytest.approx(expected, rel=1e-6)


def _q_ids_by_hand(state, response, length):
  ids = [t for t in state if t not in (PAD_ID, EOS_ID)] + [t for t in response if t not in (PAD_ID, EOS_ID)]
  ids = ids[-(length - 1):] + [EOS_ID]
  return ids + [PAD_ID] * (length - len(ids))


def test_q_input_is_the_state_then_the_response():
  enc = np.array([[5, 6, 7, EOS_ID, PAD_ID, PAD_ID], [9, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]], np.int32)
  dec = np.array([[8, 9, EOS_ID, PAD_ID], [3, 4, 5, 6]], np.int32)  # row 1 was cut at L: no EOS
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], np.float32)
  for length in (12, 4):
    expected = np.array([_q_ids_by_hand(e, d, length) for e, d in zip(enc, dec)])
    np.testing.assert_array_equal(ppo.q_input_ids(enc, dec, mask, length), expected)
    np.testing.assert_array_equal(jax.jit(ppo.q_input_ids, static_argnums=3)(enc, dec, mask, length), expected)
  assert ppo.q_input_ids(enc, dec, mask, 4)[0].tolist() == [7, 8, 9, EOS_ID]  # oldest ids dropped


def test_q_input_decodes_as_the_state_text_followed_by_the_response():
  vocab = project_vocabulary()
  state = "topic: photosynthesis\nStudent: I like pictures.\nTeacher:"
  response = "Let me draw the leaf for you."
  enc = np.array([vocab.encode(state) + [EOS_ID] + [PAD_ID] * 5], np.int32)
  dec = np.array([vocab.encode(response) + [EOS_ID, PAD_ID]], np.int32)
  mask = (np.arange(dec.shape[1]) < dec.shape[1] - 1).astype(np.float32)[None]
  ids = ppo.q_input_ids(enc, dec, mask, 64)
  # SentencePiece reads a newline as a space, in the policy's input as here.
  assert vocab.decode(ids[0]) == vocab.decode(vocab.encode(state)) + " " + response
  assert vocab.decode(ids[0]).endswith("I like pictures. Teacher: Let me draw the leaf for you.")


def test_q_regression_losses_by_hand():
  raw = jnp.array([0.5, -1.0, 2.0])
  target = jnp.array([1.0, 0.0, 1.0])
  weight = jnp.array([1.0, 1.0, 0.0])
  assert float(ppo.q_regression_loss(raw, target, weight, "mse")) == pytest.approx((0.25 + 1.0) / 2)
  ce = lambda x, t: -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 / (1 + np.exp(x))))
  assert float(ppo.q_regression_loss(raw, target, weight, "cross_entropy")) == pytest.approx(
      (ce(0.5, 1.0) + ce(-1.0, 0.0)) / 2, rel=1e-6)
  np.testing.assert_allclose(ppo.q_values(raw, "mse", 3.0, 2.0), [4.0, 1.0, 7.0])
  np.testing.assert_allclose(ppo.q_values(raw, "cross_entropy"), 1 / (1 + np.exp(-np.array([0.5, -1.0, 2.0]))),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="unknown Q loss"):
    ppo.q_regression_loss(raw, target, weight, "hinge")


def test_bad_hparams_fail_clearly():
  with pytest.raises(ValueError, match="unknown baseline"):
    ppo.PPOHParams(baseline="median")
  with pytest.raises(ValueError, match="ppo_epochs"):
    ppo.PPOHParams(ppo_epochs=0)


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def random_params(module, *args, seed: int, head_scale: float = 0.0):
  """Parameters of the module's shapes from numpy (layer-norm scales 1, other weights N(0, 0.3^2)); compiling
  Flax's threefry initialisers costs tens of seconds on a small CPU."""
  rng = np.random.default_rng(seed)
  shapes = nn.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)["params"])

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if "norm" in name:
      return jnp.ones(s.shape, s.dtype)
    scale = head_scale if "value_" in name else 0.3
    return jnp.asarray(scale * rng.normal(size=s.shape), s.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _init_params():
  x = jnp.ones((1, 4), jnp.int32)
  params = random_params(POLICY, x, x, seed=0)
  reference = jax.tree.map(lambda p, n: p + 0.05 * n, params, random_params(POLICY, x, x, seed=1))  # pi_i != pi
  q_params = random_params(VALUE, x, seed=2, head_scale=1.0)
  value_params = random_params(VALUE, x, seed=3, head_scale=0.1)
  return params, reference, q_params, value_params


@pytest.fixture(scope="module")
def step_setup():
  params, reference, q_params, value_params = _init_params()
  rng = np.random.default_rng(0)
  enc = rng.integers(3, 64, size=(4, 16)).astype(np.int32)  # the width of q_ids: one compiled value forward
  enc[:, 7], enc[:, 8:] = EOS_ID, PAD_ID
  dec = rng.integers(3, 64, size=(4, 6)).astype(np.int32)
  lengths = np.array([6, 3, 1, 4])
  mask = (np.arange(6)[None] < lengths[:, None]).astype(np.float32)
  dec[np.arange(4), lengths - 1] = EOS_ID
  dec[mask == 0] = PAD_ID
  dec[0, -1] = 17  # row 0 was cut at L without EOS
  q_ids = np.array([_q_ids_by_hand(e, d, 16) for e, d in zip(enc, dec)], np.int32)
  batch = {"encoder_ids": enc, "decoder_ids": dec, "token_mask": mask, "q_ids": q_ids}
  return params, reference, q_params, value_params, batch


def _numpy_terms(params, reference, q_params, batch, beta, shift, scale):
  """log-ratio, exact KL, Q (reward units) and r = Q - beta * log-ratio, in numpy from the models' raw outputs."""
  dec_in = np.concatenate([np.zeros((4, 1), np.int32), batch["decoder_ids"][:, :-1]], 1)
  lp = _log_softmax(np.asarray(apply_policy(params, batch["encoder_ids"], dec_in), np.float64))
  lq = _log_softmax(np.asarray(apply_policy(reference, batch["encoder_ids"], dec_in), np.float64))
  pick = lambda l: np.take_along_axis(l, batch["decoder_ids"][..., None], -1)[..., 0]
  mask = batch["token_mask"]
  log_ratio = ((pick(lp) - pick(lq)) * mask).sum(1)
  exact_kl = ((np.exp(lp) * (lp - lq)).sum(-1) * mask).sum(1)
  q = np.asarray(apply_value(q_params, batch["q_ids"]), np.float64) * scale + shift
  return log_ratio, exact_kl, q, q - beta * log_ratio


def test_rewards_and_advantages_by_hand():
  r = ppo.ppo_rewards(jnp.array([1.0, 2.0, 4.0]), jnp.array([0.5, -1.0, 2.0]), 0.2)
  np.testing.assert_allclose(r, [0.9, 2.2, 3.6], rtol=1e-6)
  a = ppo.ppo_advantages(r, jnp.full(3, r.mean()), normalize=False)
  np.testing.assert_allclose(a, [0.9 - 6.7 / 3, 2.2 - 6.7 / 3, 3.6 - 6.7 / 3], rtol=1e-5)
  centred = np.array([0.9, 2.2, 3.6]) - 6.7 / 3
  np.testing.assert_allclose(ppo.ppo_advantages(r, jnp.zeros(3), normalize=True), centred / centred.std(), rtol=1e-5)


def test_one_epoch_ppo_step_is_the_vanilla_pg_update_on_q_minus_kl(step_setup):
  params, reference, q_params, value_params, batch = step_setup
  beta, shift, scale = 0.5, 2.0, 3.0
  hp = ppo.PPOHParams(beta=beta, ppo_epochs=1, baseline="value")
  frozen = {"reference": reference, "q": q_params, "q_shift": jnp.float32(shift), "q_scale": jnp.float32(scale)}
  state = ac.ActorCriticState(TrainState.create(params, optax.sgd(LR), jax.random.PRNGKey(0)),
                              TrainState.create(value_params, optax.sgd(LR), jax.random.PRNGKey(0)))
  new, m = jitted_step(hp)(state, batch, frozen)
  log_ratio, exact_kl, q, reward = _numpy_terms(params, reference, q_params, batch, beta, shift, scale)
  v = np.asarray(apply_value(value_params, batch["encoder_ids"]), np.float64)
  adv = (reward - v - (reward - v).mean()) / ((reward - v).std() + 1e-8)
  assert float(m["q_reward"]) == pytest.approx(q.mean(), rel=1e-5)  # raw * scale + shift
  assert float(m["log_ratio_to_start"]) == pytest.approx(log_ratio.mean(), rel=1e-4, abs=1e-6)
  assert float(m["kl_to_start"]) == pytest.approx(exact_kl.mean(), rel=1e-4)
  assert float(m["reward"]) == pytest.approx(reward.mean(), rel=1e-5)
  assert float(m["baseline"]) == pytest.approx(v.mean(), rel=1e-5)
  assert float(m["value_loss"]) == pytest.approx(np.mean((v - reward) ** 2), rel=1e-4)
  assert float(m["clip_fraction"]) == 0.0
  mask = jnp.asarray(batch["token_mask"])
  tokens = batch["token_mask"].sum(1)
  assert float(m["policy_loss"]) == pytest.approx(-(adv * tokens).sum() / tokens.sum(), rel=1e-4, abs=1e-6)

  def vanilla_pg(p):  # -sum_tokens A * log pi / #tokens, the REINFORCE surrogate with the numpy advantages
    dec_in = jnp.concatenate([jnp.zeros((4, 1), jnp.int32), batch["decoder_ids"][:, :-1]], 1)
    logp = jax.nn.log_softmax(apply_policy(p, batch["encoder_ids"], dec_in))
    logp = jnp.take_along_axis(logp, batch["decoder_ids"][..., None], -1)[..., 0]
    return -(jnp.asarray(adv, jnp.float32)[:, None] * logp * mask).sum() / mask.sum()

  expected = jax.tree.map(lambda p, g: p - LR * g, params, jax.jit(jax.grad(vanilla_pg))(params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6), new.policy.params, expected)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), new.value.params, value_params)
  assert max(jax.tree.leaves(moved)) > 0  # the learned baseline trained too
