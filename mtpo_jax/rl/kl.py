"""Exact KL divergences between two token-level policies, from their logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_kl(logits_p: jax.Array, logits_q: jax.Array, mask: jax.Array) -> jax.Array:
  """KL(p || q) at every position, summed over the vocabulary: [B, L, V] x2, mask [B, L] -> [B, L].

  Exact (not the sampled log-ratio), so its gradient has no sampling variance; papers digest A7 leaves the
  estimator open ([NOT FOUND]) and this is the choice here.
  """
  logp = jax.nn.log_softmax(logits_p.astype(jnp.float32), axis=-1)
  logq = jax.nn.log_softmax(logits_q.astype(jnp.float32), axis=-1)
  return (jnp.exp(logp) * (logp - logq)).sum(-1) * mask


def sequence_kl(logits_p: jax.Array, logits_q: jax.Array, mask: jax.Array) -> jax.Array:
  """KL(p||q)[x] of a whole turn: the sum of per-token KLs along the sampled turn (the chain rule) -> [B]."""
  return token_kl(logits_p, logits_q, mask).sum(-1)


def token_logprobs(logits: jax.Array, tokens: jax.Array) -> jax.Array:
  """log softmax(logits)[token] : [B, L, V], [B, L] -> [B, L]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
