"""Batched autoregressive sampling with a KV cache, as one jitted `lax.while_loop`.

`sample` is a pure function (model and sampling settings static); `Sampler` is the edge that pads batch and
prompt length up to buckets so that repeated calls with ragged inputs reuse one compiled program.

Returned log-probabilities are those of the sampled tokens under the model's distribution at the sampling
temperature (temperature 1 when greedy), *before* top-k/top-p truncation: with top_k=0 and top_p=1 they are
exactly log pi(token | prefix) of the policy that produced the sample, which is what RL losses need.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax.models.t5 import T5

Array = jax.Array
StepFn = Callable[[Array, Any], tuple[Array, Any]]  # (tokens [B, 1], state) -> (logits [B, 1, V], state)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """Static decoding settings. top_k=0 and top_p=1 disable truncation."""
  max_new_tokens: int = 64
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  greedy: bool = False

  def __post_init__(self):
    if self.max_new_tokens <= 0:
      raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")
    if not self.greedy and self.temperature <= 0:
      raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature} (use greedy=True)")
    if not 0.0 < self.top_p <= 1.0:
      raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
    if self.top_k < 0:
      raise ValueError(f"top_k must be >= 0, got {self.top_k}")


class SampleOutput(NamedTuple):
  """tokens: [B, N] int32, padded with pad_id after EOS; logprobs: [B, N] float32, 0 after EOS;
  lengths: [B] int32, generated tokens including the EOS."""
  tokens: Array
  logprobs: Array
  lengths: Array


def filter_logits(logits: Array, top_k: int, top_p: float) -> Array:
  """Masks logits [B, V] outside the top-k set and outside the smallest nucleus with mass >= top_p."""
  neg = jnp.finfo(logits.dtype).min
  if top_k > 0:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, neg, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    # The cutoff is the smallest logit whose preceding mass is still below top_p.
    cutoff = jnp.min(jnp.where(mass_before < top_p, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < cutoff, neg, logits)
  return logits


def row_keys(rng: Array, batch_size: int) -> Array:
  """One raw key per row: `rng` [2] is split by row index; `rng` [B, 2] already holds a key per row (e.g.
  hashed from each conversation's id, so a row's sample does not depend on its batch position)."""
  if rng.ndim == 2:
    return rng
  return jax.vmap(lambda r: jax.random.fold_in(rng, r))(jnp.arange(batch_size))


def decode_loop(step_fn: StepFn, state: Any, batch_size: int, rng: Array, config: SamplingConfig, *,
                start_id: int, eos_id: int, pad_id: int) -> SampleOutput:
  """Generic sampler over any cached `step_fn`; stops early once every row has emitted EOS.

  rng: [2] or per-row [B, 2] raw keys (see `row_keys`)."""
  n = config.max_new_tokens
  keys0 = row_keys(rng, batch_size)
  temperature = 1.0 if config.greedy else config.temperature

  def cond(carry):
    i, _, _, done, *_ = carry
    return (i < n) & ~jnp.all(done)

  def body(carry):
    i, last, st, done, tokens, logprobs, lengths = carry
    logits, st = step_fn(last[:, None], st)
    logits = logits[:, -1].astype(jnp.float32) / temperature
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    if config.greedy:
      tok = jnp.argmax(logits, axis=-1)
    else:
      masked = filter_logits(logits, config.top_k, config.top_p)
      # One key per (row, step): a row's sample does not depend on batch padding or its neighbours.
      keys = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys0)
      tok = jax.vmap(jax.random.categorical)(keys, masked)
    tok = tok.astype(jnp.int32)
    lp = jnp.take_along_axis(logp_all, tok[:, None], axis=-1)[:, 0]
    tok = jnp.where(done, pad_id, tok)
    lp = jnp.where(done, 0.0, lp)
    tokens = tokens.at[:, i].set(tok)
    logprobs = logprobs.at[:, i].set(lp)
    lengths = lengths + (~done).astype(jnp.int32)
    done = done | (tok == eos_id)
    return i + 1, tok, st, done, tokens, logprobs, lengths

  carry = (jnp.zeros((), jnp.int32), jnp.full((batch_size,), start_id, jnp.int32), state,
           jnp.zeros((batch_size,), bool), jnp.full((batch_size, n), pad_id, jnp.int32),
           jnp.zeros((batch_size, n), jnp.float32), jnp.zeros((batch_size,), jnp.int32))
  _, _, _, _, tokens, logprobs, lengths = jax.lax.while_loop(cond, body, carry)
  return SampleOutput(tokens, logprobs, lengths)


def _encode(model: T5, params: Any, input_ids: Array, attention_mask: Array | None) -> tuple[Any, Array, Array]:
  """(variables, encoder outputs [B, S, D], attention mask [B, S]); the mask defaults to the non-pad positions."""
  if attention_mask is None:
    attention_mask = (input_ids != model.config.pad_token_id).astype(jnp.int32)
  variables = {"params": params}
  return variables, model.apply(variables, input_ids, attention_mask, method=T5.encode), attention_mask


def sample(model: T5, params: Any, input_ids: Array, rng: Array, config: SamplingConfig,
           attention_mask: Array | None = None) -> SampleOutput:
  """Samples continuations of encoder inputs [B, S]; pure, jit with `model` and `config` static."""
  c = model.config
  variables, encoded, attention_mask = _encode(model, params, input_ids, attention_mask)
  cache = model.apply(variables, encoded, config.max_new_tokens, method=T5.init_cache)

  def step_fn(tokens, cache):
    return model.apply(variables, tokens, attention_mask, cache, method=T5.decode_step)

  return decode_loop(step_fn, cache, input_ids.shape[0], rng, config, start_id=c.decoder_start_token_id,
                     eos_id=c.eos_token_id, pad_id=c.pad_token_id)


def greedy_full_recompute(model: T5, params: Any, input_ids: Array, max_new_tokens: int,
                          attention_mask: Array | None = None) -> Array:
  """Reference greedy decoder without a cache: re-runs the whole decoder each step. tokens [B, N]."""
  c = model.config
  variables, encoded, attention_mask = _encode(model, params, input_ids, attention_mask)
  b = input_ids.shape[0]

  def body(i, carry):
    dec_in, done = carry
    logits = model.apply(variables, encoded, attention_mask, dec_in[:, :-1], method=T5.decode)
    tok = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False), axis=-1).astype(jnp.int32)
    tok = jnp.where(done, c.pad_token_id, tok)
    dec_in = dec_in.at[:, i + 1].set(tok)
    return dec_in, done | (tok == c.eos_token_id)

  dec_in = jnp.full((b, max_new_tokens + 1), c.pad_token_id, jnp.int32).at[:, 0].set(c.decoder_start_token_id)
  dec_in, _ = jax.lax.fori_loop(0, max_new_tokens, body, (dec_in, jnp.zeros((b,), bool)))
  return dec_in[:, 1:]


def bucket(n: int, minimum: int) -> int:
  """Smallest power of two >= max(n, minimum)."""
  return max(minimum, 1 << max(0, int(n - 1).bit_length()))


class Sampler:
  """Edge wrapper: pads inputs to (batch, length) buckets and calls one jitted `sample` per bucket."""

  def __init__(self, model: T5, config: SamplingConfig, min_batch: int = 8, min_length: int = 16):
    self.model, self.config = model, config
    self.min_batch, self.min_length = min_batch, min_length
    self._jitted = jax.jit(functools.partial(sample, model, config=config))

  @property
  def num_compilations(self) -> int:
    return self._jitted._cache_size()

  def __call__(self, params: Any, input_ids: np.ndarray, rng: Array) -> SampleOutput:
    """input_ids: [B, S] (right-padded with pad_id); rng: [2] or per-row [B, 2] raw keys.
    Returns SampleOutput as numpy arrays, sliced to B rows."""
    input_ids = np.asarray(input_ids, np.int32)
    if input_ids.ndim != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
      raise ValueError(f"input_ids must be a non-empty [batch, length] array, got shape {input_ids.shape}")
    b, s = input_ids.shape
    bb = bucket(b, self.min_batch)
    padded = np.full((bb, bucket(s, self.min_length)), self.model.config.pad_token_id, np.int32)
    padded[:b, :s] = input_ids
    rng = jnp.asarray(rng)
    if rng.ndim == 2:  # per-row keys: pad them to the bucket too
      rng = jnp.concatenate([rng, jnp.zeros((bb - b, rng.shape[1]), rng.dtype)], axis=0)
    out = self._jitted(params, jnp.asarray(padded), rng)
    return SampleOutput(*(np.asarray(x)[:b] for x in out))
