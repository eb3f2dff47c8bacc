"""Sampling from MTPO-tau's geometric mixture of the policy and the reference, and teacher-forced log-probs.

MTPO-tau plays pi^alpha(y|x) ∝ pi_theta(y|x)^(1-tau) * mu(y|x)^tau (papers/digest.md A4). The sequence-level
geometric mixture is intractable for autoregressive models; as in Nash-MD it is approximated per token by
interpolating the two models' logits,

    logits_mix(. | x, y_<t) = (1 - tau) * logits_theta(. | x, y_<t) + tau * logits_mu(. | x, y_<t),

which is what the digest infers the paper does (A4, [inferred]). `sample_mixture` runs both encoders once and
one `decode_loop` whose state carries both models' KV caches; its log-probs are those of the sampled tokens
under the mixture (at the sampling temperature). The deep MTPO-tau update treats these samples as its own
(no importance weights), because the algorithm's Q is that of the mixture itself (digest A4: the mixture plays
against itself, and pi_{t+1} is the mirror step from pi_t^alpha); the behaviour log-probs are kept in the rollout
batch for diagnostics (docs/algorithms.md, "MTPO-tau samples"). tau = 0 reproduces `decoding.sample` of theta
token for token with the same key, tau = 1 that of mu.

`teacher_forced_logprobs` (and its mixture twin) score given tokens: log pi(y_t | x, y_<t) [B, L].
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mtpo_jax.models.decoding import Sampler, SampleOutput, SamplingConfig, decode_loop
from mtpo_jax.models.t5 import T5, shift_right

Array = jax.Array


class MixtureParams(NamedTuple):
  """What `MixtureSampler` samples with: the policy's params, the reference's, and tau (a scalar; traced,
  so changing it does not recompile)."""
  theta: Any
  mu: Any
  tau: Any


def mix_logits(logits_theta: Array, logits_mu: Array, tau: Any) -> Array:
  """(1 - tau) * logits_theta + tau * logits_mu in float32 (digest A4, per-token approximation)."""
  tau = jnp.asarray(tau, jnp.float32)
  return (1.0 - tau) * logits_theta.astype(jnp.float32) + tau * logits_mu.astype(jnp.float32)


def check_compatible(model_theta: T5, model_mu: T5) -> None:
  """Both models must share the vocabulary and special ids (sizes may differ otherwise)."""
  a, b = model_theta.config, model_mu.config
  fields = ("vocab_size", "pad_token_id", "eos_token_id", "decoder_start_token_id")
  diff = [f"{f}: {getattr(a, f)} vs {getattr(b, f)}" for f in fields if getattr(a, f) != getattr(b, f)]
  if diff:
    raise ValueError(f"cannot mix the logits of models with different vocabularies ({'; '.join(diff)})")


def _check_tau(tau: Any) -> None:
  if isinstance(tau, (int, float)) and not 0.0 <= tau <= 1.0:
    raise ValueError(f"tau must be in [0, 1], got {tau}")


def _mask(model: T5, input_ids: Array, attention_mask: Array | None) -> Array:
  if attention_mask is None:
    return (input_ids != model.config.pad_token_id).astype(jnp.int32)
  return attention_mask


def sample_mixture(model_theta: T5, params_theta: Any, model_mu: T5, params_mu: Any, input_ids: Array, rng: Array,
                   config: SamplingConfig, tau: Any, attention_mask: Array | None = None) -> SampleOutput:
  """Samples continuations of input_ids [B, S] from the per-token logit mixture; pure, jit with the models and
  `config` static. rng: [2] or per-row [B, 2] raw keys (decoding.row_keys). Returns tokens [B, N], log-probs
  [B, N] of the tokens under the mixture (0 after EOS) and lengths [B] (EOS included)."""
  check_compatible(model_theta, model_mu)
  _check_tau(tau)
  mask = _mask(model_theta, input_ids, attention_mask)
  vt, vm = {"params": params_theta}, {"params": params_mu}
  caches = []
  for model, variables in ((model_theta, vt), (model_mu, vm)):
    encoded = model.apply(variables, input_ids, mask, method=T5.encode)
    caches.append(model.apply(variables, encoded, config.max_new_tokens, method=T5.init_cache))

  def step_fn(tokens, state):
    logits_t, cache_t = model_theta.apply(vt, tokens, mask, state[0], method=T5.decode_step)
    logits_m, cache_m = model_mu.apply(vm, tokens, mask, state[1], method=T5.decode_step)
    return mix_logits(logits_t, logits_m, tau), (cache_t, cache_m)

  c = model_theta.config
  return decode_loop(step_fn, tuple(caches), input_ids.shape[0], rng, config, start_id=c.decoder_start_token_id,
                     eos_id=c.eos_token_id, pad_id=c.pad_token_id)


def teacher_forced_logits(model: T5, params: Any, input_ids: Array, decoder_targets: Array,
                          attention_mask: Array | None = None) -> Array:
  """Logits [B, L, V] float32 that predict each target token y_t from (x, y_<t)."""
  dec_in = shift_right(decoder_targets, model.config.decoder_start_token_id)
  return model.apply({"params": params}, input_ids, dec_in, _mask(model, input_ids, attention_mask))


def _gather(logits: Array, targets: Array, temperature: float) -> Array:
  logp = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature, axis=-1)
  return jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]


def teacher_forced_logprobs(model: T5, params: Any, input_ids: Array, decoder_targets: Array,
                            attention_mask: Array | None = None, *, temperature: float = 1.0) -> Array:
  """log pi(y_t | x, y_<t) [B, L] of given tokens decoder_targets [B, L] (at `temperature`, matching the
  sampler's log-probs). Positions after a row's EOS score padding; multiply by a token mask."""
  return _gather(teacher_forced_logits(model, params, input_ids, decoder_targets, attention_mask),
                 decoder_targets, temperature)


def teacher_forced_mixture_logprobs(model_theta: T5, params_theta: Any, model_mu: T5, params_mu: Any,
                                    input_ids: Array, decoder_targets: Array, tau: Any,
                                    attention_mask: Array | None = None, *, temperature: float = 1.0) -> Array:
  """log pi_mix(y_t | x, y_<t) [B, L] under the per-token logit mixture (the distribution `sample_mixture`
  draws from)."""
  check_compatible(model_theta, model_mu)
  logits_t = teacher_forced_logits(model_theta, params_theta, input_ids, decoder_targets, attention_mask)
  logits_m = teacher_forced_logits(model_mu, params_mu, input_ids, decoder_targets, attention_mask)
  return _gather(mix_logits(logits_t, logits_m, tau), decoder_targets, temperature)


def _sample_with(model_theta: T5, model_mu: T5, params: MixtureParams, input_ids: Array, rng: Array,
                 config: SamplingConfig) -> SampleOutput:
  return sample_mixture(model_theta, params.theta, model_mu, params.mu, input_ids, rng, config, params.tau)


class MixtureSampler(Sampler):
  """`Sampler` for the mixture: the same (batch, length) buckets and call signature, with `params` a
  `MixtureParams(theta, mu, tau)`; one compiled program per bucket whatever tau is."""

  def __init__(self, model_theta: T5, model_mu: T5, config: SamplingConfig, min_batch: int = 8,
               min_length: int = 16):
    check_compatible(model_theta, model_mu)
    super().__init__(model_theta, config, min_batch, min_length)
    self.model_mu = model_mu
    # Sampler.__call__ pads to the buckets and calls `_jitted(params, ids, rng)`; only the function differs.
    self._jitted = jax.jit(functools.partial(_sample_with, model_theta, model_mu, config=config))

  def __call__(self, params: MixtureParams, input_ids, rng: Array) -> SampleOutput:
    """params: MixtureParams; input_ids [B, S] right-padded; rng [2] or per-row [B, 2]. Numpy outputs, B rows."""
    if not isinstance(params, MixtureParams):
      raise TypeError(f"MixtureSampler needs MixtureParams(theta, mu, tau), got {type(params).__name__}")
    _check_tau(params.tau)
    params = params._replace(tau=jnp.asarray(params.tau, jnp.float32))
    return super().__call__(params, input_ids, rng)
