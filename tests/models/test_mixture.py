"""MTPO-tau's mixture sampler: tau=0 is the policy, tau=1 the reference, greedy picks the argmax of the mixed
teacher-forced logits, log-probs are the mixture's, and each shape bucket compiles once.

Compilation dominates the cost on CPU, so every test shares a handful of jitted functions (tau is traced)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax.models import mixture as mx
from mtpo_jax.models.decoding import SamplingConfig, sample
from mtpo_jax.models.t5 import T5
from mtpo_jax.testing import tiny_config

CONFIG = tiny_config(relative_attention_num_buckets=8, relative_attention_max_distance=16)
SAMPLING = SamplingConfig(max_new_tokens=12, temperature=0.8)
GREEDY = SamplingConfig(max_new_tokens=12, greedy=True)
MODEL = T5(CONFIG)


@pytest.fixture(scope="module")
def params():
  x = jnp.ones((1, 8), jnp.int32)
  init = jax.jit(MODEL.init)
  out = []
  for seed in (0, 1):  # theta, mu: same architecture, different weights
    p = nn.unbox(init(jax.random.PRNGKey(seed), x, x[:, :4])["params"])
    out.append(dict(p, logits_dense=p["logits_dense"].at[:, CONFIG.eos_token_id].add(0.3)))  # some rows stop early
  return tuple(out)


@functools.lru_cache(maxsize=None)
def _mixture_fn(config):
  return jax.jit(lambda pt, pm, x, rng, tau: mx.sample_mixture(MODEL, pt, MODEL, pm, x, rng, config, tau))


_plain = jax.jit(functools.partial(sample, MODEL, config=SAMPLING))


@jax.jit
def _teacher_forced(pt, pm, x, tokens, tau):
  """(mixed logits [B, L, V], mixture log-probs [B, L], theta's own log-probs [B, L]) at SAMPLING's temperature."""
  mixed = mx.mix_logits(mx.teacher_forced_logits(MODEL, pt, x, tokens), mx.teacher_forced_logits(MODEL, pm, x, tokens),
                        tau)
  t = SAMPLING.temperature
  return (mixed, mx.teacher_forced_mixture_logprobs(MODEL, pt, MODEL, pm, x, tokens, tau, temperature=t),
          mx.teacher_forced_logprobs(MODEL, pt, x, tokens, temperature=t))


def _inputs(batch=5, length=10):
  x = np.random.RandomState(0).randint(3, CONFIG.vocab_size, (batch, length)).astype(np.int32)
  x[1, 6:] = 0
  x[3, 3:] = 0
  return jnp.asarray(x)


def _mask(out):
  return np.arange(out.tokens.shape[1])[None] < np.asarray(out.lengths)[:, None]


@pytest.mark.parametrize("tau, which", [(0.0, 0), (1.0, 1)])
def test_endpoints_equal_plain_sampling(params, tau, which):
  rng = jax.random.PRNGKey(7)
  out = _mixture_fn(SAMPLING)(*params, _inputs(), rng, tau)
  ref = _plain(params[which], _inputs(), rng)
  np.testing.assert_array_equal(out.tokens, ref.tokens)
  np.testing.assert_array_equal(out.lengths, ref.lengths)
  np.testing.assert_allclose(out.logprobs, ref.logprobs, atol=1e-5)


def test_greedy_mixture_is_argmax_of_mixed_teacher_forced_logits(params):
  tau = 0.4
  out = _mixture_fn(GREEDY)(*params, _inputs(), jax.random.PRNGKey(0), tau)
  mixed, _, _ = _teacher_forced(*params, _inputs(), jnp.asarray(out.tokens), tau)
  mask = _mask(out)
  np.testing.assert_array_equal(np.where(mask, np.argmax(mixed, -1), -1), np.where(mask, out.tokens, -1))
  # The greedy mixture really differs from the greedy policy somewhere (the check is not vacuous).
  plain = _mixture_fn(GREEDY)(*params, _inputs(), jax.random.PRNGKey(0), 0.0)
  assert not np.array_equal(plain.tokens, out.tokens)


def test_logprobs_are_the_mixture_teacher_forced_logprobs(params):
  tau = 0.25
  out = _mixture_fn(SAMPLING)(*params, _inputs(), jax.random.PRNGKey(3), tau)
  _, tf, own = _teacher_forced(*params, _inputs(), jnp.asarray(out.tokens), tau)
  mask = _mask(out)
  np.testing.assert_allclose(np.asarray(out.logprobs) * mask, np.asarray(tf) * mask, atol=1e-4)
  assert np.abs((np.asarray(own) - np.asarray(tf)) * mask).max() > 1e-3  # ... and not the policy's own


def test_teacher_forced_logprobs_match_plain_sampler(params):
  out = _plain(params[0], _inputs(), jax.random.PRNGKey(5))
  _, _, own = _teacher_forced(*params, _inputs(), jnp.asarray(out.tokens), 0.5)
  mask = _mask(out)
  np.testing.assert_allclose(np.asarray(out.logprobs) * mask, np.asarray(own) * mask, atol=1e-4)


def test_mixture_sampler_compiles_once_per_bucket(params):
  pt, pm = params
  sampler = mx.MixtureSampler(MODEL, MODEL, SamplingConfig(max_new_tokens=6), min_batch=8, min_length=16)
  rs = np.random.RandomState(1)
  for i, (batch, length, tau) in enumerate([(3, 5, 0.0), (8, 16, 0.1), (1, 9, 0.5), (6, 12, 1.0)]):
    ids = rs.randint(3, CONFIG.vocab_size, (batch, length)).astype(np.int32)
    keys = jnp.asarray(rs.randint(0, 2**31, (batch, 2)).astype(np.uint32))  # per-row keys, as rollouts use
    out = sampler(mx.MixtureParams(pt, pm, tau), ids, keys)
    assert out.tokens.shape == (batch, 6) and out.logprobs.shape == (batch, 6) and out.lengths.shape == (batch,)
  assert sampler.num_compilations == 1
  keys = jnp.asarray(rs.randint(0, 2**31, (9, 2)).astype(np.uint32))
  sampler(mx.MixtureParams(pt, pm, 0.2), rs.randint(3, 60, (9, 4)).astype(np.int32), keys)
  assert sampler.num_compilations == 2  # the next batch bucket: exactly one more program


def test_rejects_bad_inputs(params):
  pt, pm = params
  with pytest.raises(ValueError, match="vocabularies"):
    mx.MixtureSampler(MODEL, T5(CONFIG.replace(vocab_size=80)), SamplingConfig())
  sampler = mx.MixtureSampler(MODEL, MODEL, SamplingConfig(max_new_tokens=4))
  with pytest.raises(ValueError, match="tau"):
    sampler(mx.MixtureParams(pt, pm, 1.5), np.ones((2, 4), np.int32), jax.random.PRNGKey(0))
  with pytest.raises(TypeError, match="MixtureParams"):
    sampler(pt, np.ones((2, 4), np.int32), jax.random.PRNGKey(0))
