"""The deep actor-critic step: delay, direction of the update, KL pull to mu, value targets by hand (numpy GAE)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value
from mtpo_jax.rl import actor_critic as ac
from mtpo_jax.testing import tiny_config
from mtpo_jax.training.state import TrainState

CONFIG = tiny_config(32, d_model=16, d_kv=4, d_ff=32, num_heads=2, layers=1, relative_attention_num_buckets=8)


def _batch(rewards):
  rs = np.random.RandomState(0)
  dec = rs.randint(3, 32, (3, 4)).astype(np.int32)
  dec[:, -1] = 1
  return {"encoder_ids": jnp.asarray(rs.randint(3, 32, (3, 6)), jnp.int32), "decoder_ids": jnp.asarray(dec),
          "token_mask": jnp.ones((3, 4)), "row_mask": jnp.ones((3,)),
          "turn_rows": jnp.array([[0, 1], [2, -1]]), "turn_mask": jnp.array([[1.0, 1.0], [1.0, 0.0]]),
          "rewards": jnp.asarray(rewards, jnp.float32)}


def _setup(lr=0.5, policy_delay=0, alpha=0.0, normalize=False, seed=0, kl_in_reward=True):
  policy, value = T5(CONFIG), T5Value(CONFIG)
  x = jnp.ones((1, 4), jnp.int32)
  pp = nn.unbox(policy.init(jax.random.PRNGKey(seed), x, x)["params"])
  vp = nn.unbox(value.init(jax.random.PRNGKey(seed + 1), x)["params"])
  vp["value_head"] = jax.random.normal(jax.random.PRNGKey(9), vp["value_head"].shape) * 0.1
  tx = optax.sgd(lr)
  state = ac.ActorCriticState(TrainState.create(pp, tx, jax.random.PRNGKey(0)),
                              TrainState.create(vp, tx, jax.random.PRNGKey(1)))
  hp = ac.ActorCriticHParams(alpha=alpha, gamma=1.0, lam=0.95, policy_delay=policy_delay,
                             normalize_advantages=normalize, kl_in_reward=kl_in_reward)
  step = jax.jit(lambda s, b, f: ac.actor_critic_step(s, b, f, hp=hp, policy=policy, value=value, policy_tx=tx,
                                                      value_tx=tx))
  return state, step, policy, value


def test_row_turn_mapping():
  rows, mask = jnp.array([[0, 1], [2, -1]]), jnp.array([[1.0, 1.0], [1.0, 0.0]])
  np.testing.assert_array_equal(ac.rows_to_turns(jnp.array([5.0, 6.0, 7.0]), rows, mask), [[5, 6], [7, 0]])
  np.testing.assert_array_equal(ac.turns_to_rows(jnp.array([[5.0, 6.0], [7.0, 99.0]]), rows, mask, 3), [5, 6, 7])


def test_value_targets_match_numpy_gae():
  state, step, _, value = _setup()
  batch = _batch([[0.0, 0.8], [0.2, 0.0]])
  v = np.asarray(value.apply({"params": state.value.params}, batch["encoder_ids"]))
  # numpy GAE (gamma 1, lam .95): conversation 0 rows (0, 1), conversation 1 row 2; terminal value 0.
  d1 = 0.8 - v[1]; d0 = v[1] - v[0]
  t = {1: d1 + v[1], 0: d0 + 0.95 * d1 + v[0], 2: 0.2 - v[2] + v[2]}
  expected = np.mean([(v[i] - t[i]) ** 2 for i in range(3)])
  _, metrics = step(state, batch, {"reference": state.policy.params})
  assert float(metrics["value_loss"]) == pytest.approx(expected, rel=1e-5)


def _numpy_kl(policy, params, ref_params, batch):
  """Per-row turn KL(pi || mu) along the sampled tokens, in float64 numpy from both models' logits."""
  from mtpo_jax.models.t5 import shift_right
  dec_in = shift_right(batch["decoder_ids"], CONFIG.decoder_start_token_id)
  out = []
  for p in (params, ref_params):
    z = np.asarray(policy.apply({"params": p}, batch["encoder_ids"], dec_in), np.float64)
    out.append(z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True))
  lp, lq = out
  return ((np.exp(lp) * (lp - lq)).sum(-1) * np.asarray(batch["token_mask"])).sum(-1)


@pytest.mark.parametrize("kl_in_reward", [True, False])
def test_value_targets_are_the_regularised_returns(kl_in_reward):
  """With alpha > 0 and mu != pi the GAE rewards are r_h - alpha * KL_h (digest A2): the value loss matches a numpy
  GAE over those rewards (and over the raw rewards with kl_in_reward off), so a flipped sign or a dropped term
  fails."""
  alpha = 0.3
  state, _, policy, value = _setup(alpha=alpha)
  ref = _setup(seed=5)[0].policy.params
  batch = _batch([[0.0, 0.8], [0.2, 0.0]])
  hp = ac.ActorCriticHParams(alpha=alpha, gamma=1.0, lam=0.95, policy_delay=0, normalize_advantages=False,
                             kl_in_reward=kl_in_reward)
  tx = optax.sgd(0.1)
  _, metrics = jax.jit(lambda s, b, f: ac.actor_critic_step(s, b, f, hp=hp, policy=policy, value=value,
                                                            policy_tx=tx, value_tx=tx))(state, batch,
                                                                                        {"reference": ref})
  v = np.asarray(value.apply({"params": state.value.params}, batch["encoder_ids"]), np.float64)
  k = _numpy_kl(policy, state.policy.params, ref, batch) * alpha
  assert k.min() > 1e-3  # the test means something only if the KL is there
  k = k if kl_in_reward else 0.0 * k
  r = {0: -k[0], 1: 0.8 - k[1], 2: 0.2 - k[2]}  # rows 0, 1: conversation 0; row 2: conversation 1
  d1 = r[1] - v[1]
  d0 = r[0] + v[1] - v[0]
  t = {1: d1 + v[1], 0: d0 + 0.95 * d1 + v[0], 2: r[2]}
  expected = np.mean([(v[i] - t[i]) ** 2 for i in range(3)])
  assert float(metrics["value_loss"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_actor_moves_log_prob_with_the_advantage(sign):
  state, step, policy, _ = _setup(lr=0.05)
  ref = state.policy.params
  batch = _batch([[0.0, 0.0], [0.0, 0.0]])
  # Make every advantage have the given sign: a large terminal reward (or penalty) on every turn.
  batch["rewards"] = jnp.array([[sign * 5.0, sign * 5.0], [sign * 5.0, 0.0]])
  before, _ = ac.policy_turn_terms(state.policy.params, ref, batch, policy)
  new_state, _ = step(state, batch, {"reference": ref})
  after, _ = ac.policy_turn_terms(new_state.policy.params, ref, batch, policy)
  assert np.all(np.sign(np.asarray(after - before)) == sign)


def test_policy_waits_for_the_delay():
  state, step, _, _ = _setup(policy_delay=2)
  batch = _batch([[0.0, 1.0], [0.0, 0.0]])
  f = {"reference": state.policy.params}
  s1, m1 = step(state, batch, f)
  jax.tree.map(np.testing.assert_array_equal, s1.policy.params, state.policy.params)
  assert float(m1["policy_active"]) == 0.0
  assert not np.allclose(s1.value.params["value_head"], state.value.params["value_head"])
  s2, _ = step(s1, batch, f)
  s3, m3 = step(s2, batch, f)  # step counter 2 -> active
  assert float(m3["policy_active"]) == 1.0
  assert not np.allclose(s3.policy.params["logits_dense"], s2.policy.params["logits_dense"])


def test_kl_term_pulls_towards_the_reference():
  # The loss's pathwise KL term alone (kl_in_reward off): these rows are not samples of pi, so the score-function
  # part of the KL (through the rewards) has no meaning here; test_value_targets_are_the_regularised_returns and
  # test_regularised_gradient.py cover it.
  state, step, policy, _ = _setup(lr=0.2, alpha=1.0, kl_in_reward=False)
  ref_state, _, _, _ = _setup(seed=5)
  ref = ref_state.policy.params  # a different mu, so KL > 0
  batch = _batch([[0.0, 0.0], [0.0, 0.0]])
  _, kl_before = ac.policy_turn_terms(state.policy.params, ref, batch, policy)
  # Advantages are small (zero rewards, a small critic); alpha = 1 makes the KL term dominate the step.
  s, _ = step(state, batch, {"reference": ref})
  _, kl_after = ac.policy_turn_terms(s.policy.params, ref, batch, policy)
  assert float(kl_after.sum()) < float(kl_before.sum())


@pytest.mark.parametrize("microbatch", [1, 2, 4])
def test_microbatched_step_equals_the_full_batch_step(microbatch):
  """Gradient accumulation over row microbatches (strided rows, padded rows masked out) gives the full-batch
  update: same parameters, losses, KL and log-probs to float tolerance. Reference: microbatch_rows = 0."""
  rs = np.random.RandomState(3)
  dec = rs.randint(3, 32, (8, 4)).astype(np.int32)
  batch = {"encoder_ids": jnp.asarray(rs.randint(3, 32, (8, 6)), jnp.int32), "decoder_ids": jnp.asarray(dec),
           "token_mask": jnp.asarray((rs.rand(8, 4) > 0.2).astype(np.float32)),
           "row_mask": jnp.asarray([1, 1, 1, 1, 1, 1, 0, 0], jnp.float32),  # two padding rows
           "turn_rows": jnp.array([[0, 1, 2], [3, 4, 5]]), "turn_mask": jnp.ones((2, 3)),
           "rewards": jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -0.5]])}
  results = []
  for mb in (0, microbatch):
    policy, value = T5(CONFIG), T5Value(CONFIG)
    state, _, _, _ = _setup(lr=0.1, alpha=0.05, normalize=True)
    hp = ac.ActorCriticHParams(alpha=0.05, policy_delay=0, kl_in_reward=True, microbatch_rows=mb)
    tx = optax.sgd(0.1)
    step = jax.jit(lambda s, b, f: ac.actor_critic_step(s, b, f, hp=hp, policy=policy, value=value, policy_tx=tx,
                                                        value_tx=tx))
    results.append(step(state, batch, {"reference": state.policy.params}))
  (full, m_full), (micro, m_micro) = results
  for a, b in zip(jax.tree.leaves((full.policy.params, full.value.params)),
                  jax.tree.leaves((micro.policy.params, micro.value.params))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  for key in ("policy_loss", "value_loss", "kl_to_reference", "mean_turn_logp", "policy_grad_norm"):
    # the policy loss sums O(1) terms that cancel (normalised advantages): compare at float32 resolution
    assert float(m_micro[key]) == pytest.approx(float(m_full[key]), rel=1e-5, abs=1e-5), key


def test_microbatch_must_divide_the_rows():
  state, _, policy, value = _setup()
  hp = ac.ActorCriticHParams(microbatch_rows=2)
  with pytest.raises(ValueError, match="does not divide the 3 rows"):
    ac.actor_critic_step(state, _batch([[0.0, 1.0], [0.0, 0.0]]), {"reference": state.policy.params}, hp=hp,
                         policy=policy, value=value, policy_tx=optax.sgd(0.1), value_tx=optax.sgd(0.1))


def test_microbatch_order_puts_real_rows_first_and_padding_chunks_are_skipped():
  """With rows placed by microbatch_order, strided chunk j holds rows j*mb..(j+1)*mb-1; a batch whose last
  chunks are all padding (skipped by lax.cond) still gives the full-batch update."""
  order = ac.microbatch_order(8, 2)
  placed = np.empty(8, np.int64)
  placed[order] = np.arange(8)
  chunks = np.asarray(ac._chunks(jnp.asarray(placed), 4))
  np.testing.assert_array_equal(chunks, [[0, 1], [2, 3], [4, 5], [6, 7]])
  rs = np.random.RandomState(5)
  base = {"encoder_ids": rs.randint(3, 32, (8, 6)).astype(np.int32),
          "decoder_ids": rs.randint(3, 32, (8, 4)).astype(np.int32), "token_mask": np.ones((8, 4), np.float32), "row_mask": np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float32)}
  turns = {"turn_rows": np.array([[0, 1], [2, -1]], np.int32), "turn_mask": np.array([[1.0, 1.0], [1.0, 0.0]]),
           "rewards": np.array([[0.0, 1.0], [-1.0, 0.0]], np.float32)}
  ordered = {k: np.zeros_like(v) for k, v in base.items()}
  for k, v in base.items():
    ordered[k][order] = v
  ordered_turns = dict(turns, turn_rows=np.where(turns["turn_rows"] >= 0, order[np.maximum(turns["turn_rows"], 0)],
                                                 -1).astype(np.int32))
  results = []
  for mb, rows, tr in ((0, base, turns), (2, ordered, ordered_turns)):
    policy, value = T5(CONFIG), T5Value(CONFIG)
    state, _, _, _ = _setup(lr=0.1, alpha=0.05)
    hp = ac.ActorCriticHParams(alpha=0.05, policy_delay=0, microbatch_rows=mb)
    tx = optax.sgd(0.1)
    batch = {k: jnp.asarray(v) for k, v in {**rows, **tr}.items()}
    results.append(jax.jit(lambda s, b, f: ac.actor_critic_step(s, b, f, hp=hp, policy=policy, value=value,
                                                               policy_tx=tx, value_tx=tx))(
        state, batch, {"reference": state.policy.params}))
  (full, m_full), (micro, m_micro) = results
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(micro)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  assert float(m_micro["value_loss"]) == pytest.approx(float(m_full["value_loss"]), rel=1e-5)


def test_trailing_encoder_padding_does_not_change_the_step():
  """The update at a trimmed encoder length (rl_trainer.encoder_length_bucket) is the update at the full padded
  length: same parameters and metrics to float tolerance."""
  state, step, _, _ = _setup(lr=0.1, alpha=0.05, normalize=True)
  batch = _batch([[0.0, 0.8], [0.2, 0.0]])
  padded = dict(batch, encoder_ids=jnp.pad(batch["encoder_ids"], ((0, 0), (0, 10))))
  f = {"reference": _setup(seed=5)[0].policy.params}
  (a, ma), (b, mb) = step(state, batch, f), step(state, padded, f)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6)
  for key in ("policy_loss", "value_loss", "kl_to_reference"):
    assert float(ma[key]) == pytest.approx(float(mb[key]), rel=1e-4, abs=1e-6), key


def test_encoder_length_bucket_by_hand():
  from mtpo_jax.training.rl_trainer import encoder_length_bucket
  ids = np.zeros((3, 192), np.int32)
  ids[0, :8] = 5
  ids[1, :61] = 5
  assert encoder_length_bucket(ids, 4) == 96      # 61 tokens -> the second of 48, 96, 144, 192
  ids[2, :143] = 5
  assert encoder_length_bucket(ids, 4) == 144
  ids[2, :145] = 5
  assert encoder_length_bucket(ids, 4) == 192
  assert encoder_length_bucket(ids, 1) == 192     # off
  assert encoder_length_bucket(np.zeros((2, 192), np.int32), 4) == 48
