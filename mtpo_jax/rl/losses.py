"""Policy, value and preference losses. Every loss is a masked mean over the real entries of its batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(jnp.float32)
  return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def mtpo_policy_loss(turn_logp: jax.Array, advantages: jax.Array, turn_kl: jax.Array, mask: jax.Array,
                     alpha: float) -> jax.Array:
  """L(theta) = -A_hat(x, y) * log pi_theta(y|x) + alpha * KL(pi_theta || mu)[x]   (digest A7).

  turn_logp [B, T]: sum of the turn's token log-probs (the whole turn is one action); advantages [B, T] are
  constants (no gradient flows into them); turn_kl [B, T] the exact KL to the reference at that state.
  """
  pg = -jax.lax.stop_gradient(advantages) * turn_logp
  return _masked_mean(pg + alpha * turn_kl, mask)


def value_loss(values: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """(V_hat(x) - V_phi(x))^2 averaged over real turns (digest A7); targets carry no gradient."""
  return _masked_mean((values - jax.lax.stop_gradient(targets)) ** 2, mask)


def ppo_clip_loss(logp: jax.Array, old_logp: jax.Array, advantages: jax.Array, mask: jax.Array,
                  clip_epsilon: float = 0.2) -> tuple[jax.Array, jax.Array]:
  """Token-level PPO-clip (Schulman et al. 2017): -min(rho A, clip(rho, 1-eps, 1+eps) A).

  logp, old_logp, mask: [B, L]; advantages: [B] (one per response, broadcast over its tokens) or [B, L].
  Returns (loss, fraction of tokens clipped).
  """
  if advantages.ndim == 1:
    advantages = advantages[:, None]
  advantages = jax.lax.stop_gradient(advantages)
  ratio = jnp.exp(logp - jax.lax.stop_gradient(old_logp))
  unclipped = ratio * advantages
  clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon) * advantages
  loss = -_masked_mean(jnp.minimum(unclipped, clipped), mask)
  clip_fraction = _masked_mean((jnp.abs(ratio - 1.0) > clip_epsilon).astype(jnp.float32), mask)
  return loss, clip_fraction


def bradley_terry_loss(reward_a: jax.Array, reward_b: jax.Array, label: jax.Array) -> jax.Array:
  """Cross-entropy of P(a > b) = sigmoid(r_a - r_b) against a (possibly soft) label in [0, 1]; [B] -> []."""
  delta = reward_a - reward_b
  return jnp.mean(-(label * jax.nn.log_sigmoid(delta) + (1.0 - label) * jax.nn.log_sigmoid(-delta)))


def preference_regression_loss(logit: jax.Array, target_probability: jax.Array, kind: str = "cross_entropy") -> jax.Array:
  """Training loss of a direct preference model predicting P(a > b) = sigmoid(logit) (digest A9).

  The paper calls it a "probability regression loss" without its form ([NOT FOUND]): `cross_entropy` fits
  the judge's probability with soft-label cross-entropy (a proper scoring rule, minimised exactly at the
  target), `squared` regresses the probability itself (the Brier score). Both are selectable in Gin.
  """
  if kind == "cross_entropy":
    return jnp.mean(-(target_probability * jax.nn.log_sigmoid(logit)
                      + (1.0 - target_probability) * jax.nn.log_sigmoid(-logit)))
  if kind == "squared":
    return jnp.mean((jax.nn.sigmoid(logit) - target_probability) ** 2)
  raise ValueError(f"unknown preference loss {kind!r}; expected cross_entropy or squared")
