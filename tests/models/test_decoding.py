"""KV-cache sampling: equals full recomputation, returns teacher-forced log-probs, never recompiles in a bucket."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax.models.decoding import (SamplingConfig, Sampler, filter_logits, greedy_full_recompute, sample)
from mtpo_jax.models.t5 import T5, shift_right
from mtpo_jax.testing import tiny_config

CONFIG = tiny_config(relative_attention_num_buckets=8, relative_attention_max_distance=16)


@pytest.fixture(scope="module")
def model_and_params():
  model = T5(CONFIG)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.ones((1, 8), jnp.int32),
                                        jnp.ones((1, 4), jnp.int32))["params"])
  # Make EOS likely so per-row stopping is exercised.
  params["logits_dense"] = params["logits_dense"].at[:, CONFIG.eos_token_id].add(0.35)
  return model, params


def _inputs(batch=6, length=11, seed=0):
  x = np.random.RandomState(seed).randint(3, CONFIG.vocab_size, (batch, length)).astype(np.int32)
  for row, start in ((2, 5), (4, 8)):
    if row < batch:
      x[row, start:] = 0
  return x


def test_kv_cache_greedy_equals_full_recompute(model_and_params):
  model, params = model_and_params
  x = _inputs()
  out = Sampler(model, SamplingConfig(max_new_tokens=24, greedy=True))(params, x, jax.random.PRNGKey(0))
  ref = np.asarray(greedy_full_recompute(model, params, jnp.asarray(x), 24))
  np.testing.assert_array_equal(out.tokens, ref)
  assert out.tokens.shape == (6, 24)


def test_rows_stop_at_eos_and_are_padded(model_and_params):
  model, params = model_and_params
  out = Sampler(model, SamplingConfig(max_new_tokens=24, temperature=1.0))(params, _inputs(), jax.random.PRNGKey(3))
  stopped = 0
  for tokens, logps, length in zip(out.tokens, out.logprobs, out.lengths):
    eos = np.flatnonzero(tokens == CONFIG.eos_token_id)
    if len(eos):
      stopped += 1
      assert length == eos[0] + 1
      assert (tokens[length:] == CONFIG.pad_token_id).all() and (logps[length:] == 0).all()
    else:
      assert length == 24
    assert (logps[:length] < 0).all()
  assert stopped >= 1


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_equal_teacher_forced(model_and_params, temperature):
  model, params = model_and_params
  x = _inputs()
  out = Sampler(model, SamplingConfig(max_new_tokens=20, temperature=temperature))(params, x, jax.random.PRNGKey(1))
  tokens = jnp.asarray(out.tokens)
  logits = model.apply({"params": params}, jnp.asarray(x), shift_right(tokens, CONFIG.decoder_start_token_id))
  logp = jax.nn.log_softmax(logits / temperature, axis=-1)
  tf = np.asarray(jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0])
  mask = np.arange(20)[None] < out.lengths[:, None]
  np.testing.assert_allclose(out.logprobs * mask, tf * mask, atol=2e-5)


def test_no_recompilation_within_a_bucket(model_and_params):
  model, params = model_and_params
  sampler = Sampler(model, SamplingConfig(max_new_tokens=8, top_k=5, top_p=0.9), min_batch=8, min_length=16)
  for batch, length in [(3, 5), (8, 16), (1, 9), (6, 12), (2, 16)]:
    sampler(params, _inputs(batch, length), jax.random.PRNGKey(batch))
  assert sampler.num_compilations == 1
  sampler(params, _inputs(9, 5), jax.random.PRNGKey(0))  # next batch bucket: exactly one more program
  assert sampler.num_compilations == 2


def test_row_samples_do_not_depend_on_batch_padding(model_and_params):
  model, params = model_and_params
  sampler = Sampler(model, SamplingConfig(max_new_tokens=10), min_batch=1)
  x = _inputs(5)
  small = sampler(params, x[:3], jax.random.PRNGKey(7))
  full = sampler(params, x, jax.random.PRNGKey(7))
  np.testing.assert_array_equal(small.tokens, full.tokens[:3])


def test_filter_logits_matches_numpy_reference():
  rs = np.random.RandomState(0)
  logits = rs.randn(4, 50).astype(np.float32)
  for top_k, top_p in [(5, 1.0), (0, 0.8), (10, 0.5), (1, 1.0)]:
    got = np.asarray(filter_logits(jnp.asarray(logits), top_k, top_p)) > -1e30
    for row, keep in zip(logits, got):
      order = np.argsort(-row)
      allowed = set(order[:top_k]) if top_k else set(order)
      probs = np.exp(row[order] - row.max())
      probs = probs / probs.sum()
      nucleus = set(order[: int(np.searchsorted(np.cumsum(probs), top_p) + 1)]) if top_p < 1 else set(order)
      # With both filters, the nucleus is taken over the renormalised top-k distribution.
      if top_k and top_p < 1:
        sub = row[order[:top_k]]
        p = np.exp(sub - sub.max()); p /= p.sum()
        nucleus = set(order[: int(np.searchsorted(np.cumsum(p), top_p) + 1)])
      assert set(np.flatnonzero(keep)) == allowed & nucleus


def test_top_k_one_is_greedy(model_and_params):
  model, params = model_and_params
  x = jnp.asarray(_inputs())
  greedy = sample(model, params, x, jax.random.PRNGKey(0), SamplingConfig(max_new_tokens=12, greedy=True))
  top1 = sample(model, params, x, jax.random.PRNGKey(5), SamplingConfig(max_new_tokens=12, top_k=1))
  np.testing.assert_array_equal(np.asarray(greedy.tokens), np.asarray(top1.tokens))


def test_bad_inputs_are_rejected(model_and_params):
  model, params = model_and_params
  with pytest.raises(ValueError, match="non-empty"):
    Sampler(model, SamplingConfig(max_new_tokens=4))(params, np.zeros((0, 5), np.int32), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="temperature"):
    SamplingConfig(temperature=0.0)
  with pytest.raises(ValueError, match="top_p"):
    SamplingConfig(top_p=0.0)


def test_bf16_compute_tracks_float32(model_and_params):
  model, params = model_and_params
  x = jnp.asarray(_inputs())
  dec = jnp.asarray(_inputs(seed=1)[:, :7])
  f32 = model.apply({"params": params}, x, dec)
  bf16 = T5(CONFIG.replace(dtype=jnp.bfloat16)).apply({"params": params}, x, dec)
  assert bf16.dtype == jnp.float32  # logits are always float32
  p32, p16 = jax.nn.softmax(f32), jax.nn.softmax(bf16)
  assert float(jnp.abs(p32 - p16).max()) < 0.02
  assert float((jnp.argmax(f32, -1) == jnp.argmax(bf16, -1)).mean()) > 0.9
