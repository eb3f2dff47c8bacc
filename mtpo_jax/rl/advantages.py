"""Turn-level returns and advantages (papers digest A7: GAE with lambda = 0.95 over *turns*, not tokens).

Shapes: B conversations, T agent turns (padded; `mask` [B, T] is 1 for real turns). `values` [B, T] are the
critic's V(x_h) at each agent turn's state; the value after the last real turn is 0 (the episode ends, the
reward is terminal). `rewards` [B, T] are per-turn rewards, e.g. the conversation-level preference placed on
the last real turn, optionally minus alpha * KL(pi||mu)[x_h] at every turn (the regularised value of A2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _next_values(values: jax.Array, mask: jax.Array) -> jax.Array:
  """V(x_{h+1}) for each turn: the next real turn's value, 0 after the last one."""
  nxt = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
  nxt_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
  return nxt * nxt_mask


def turn_gae(rewards: jax.Array, values: jax.Array, mask: jax.Array, gamma: float = 1.0,
             lam: float = 0.95) -> tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation as a reverse scan over turns.

  delta_h = r_h + gamma * V(x_{h+1}) - V(x_h);  A_h = delta_h + gamma * lam * A_{h+1};  returns_h = A_h + V(x_h).
  Inputs [B, T]; returns (advantages, value_targets), both [B, T] and 0 where mask is 0.
  """
  mask = mask.astype(jnp.float32)
  rewards, values = rewards * mask, values * mask
  deltas = rewards + gamma * _next_values(values, mask) - values

  def step(carry, x):
    delta, m = x
    adv = (delta + gamma * lam * carry) * m
    return adv, adv

  _, adv = jax.lax.scan(step, jnp.zeros(rewards.shape[0]), (deltas.T, mask.T), reverse=True)
  adv = adv.T
  return adv, (adv + values) * mask


def regularised_rewards(rewards: jax.Array, turn_kl: jax.Array, mask: jax.Array, alpha: float) -> jax.Array:
  """r_h - alpha * KL(pi || mu)[x_h] at every real turn [B, T] (papers digest A2, Lemma 4.1 / E.4 recursion).

  The regularised value V_alpha^{pi,pi'} subtracts alpha * KL at *every* turn, so GAE over these rewards gives the
  paper's A_hat_alpha and V_hat_alpha (A7). `turn_kl` is the KL of the sampled turn (the per-token exact KL
  summed along the sampled tokens, rl/kl.sequence_kl): an unbiased estimate of the turn's sequence KL whose
  later tokens' terms act as costs on the earlier tokens through the turn's log-probability, which is what makes
  the surrogate's expected gradient the exact gradient of the regularised objective (tests/rl/test_regularised_
  gradient.py). No gradient flows through `turn_kl` here; the pathwise part is the loss's own KL term.
  """
  mask = mask.astype(jnp.float32)
  return (rewards - alpha * jax.lax.stop_gradient(turn_kl)) * mask


def discounted_returns(rewards: jax.Array, mask: jax.Array, gamma: float = 1.0) -> jax.Array:
  """Monte-Carlo returns G_h = sum_j gamma^j r_{h+j} over real turns [B, T] (Iterative PPO's Q targets, B2)."""
  mask = mask.astype(jnp.float32)

  def step(carry, x):
    r, m = x
    g = (r + gamma * carry) * m
    return g, g

  _, g = jax.lax.scan(step, jnp.zeros(rewards.shape[0]), ((rewards * mask).T, mask.T), reverse=True)
  return g.T


def masked_mean_std(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  mask = mask.astype(jnp.float32)
  n = jnp.maximum(mask.sum(), 1.0)
  mean = (x * mask).sum() / n
  var = (((x - mean) * mask) ** 2).sum() / n
  return mean, jnp.sqrt(var)


def normalize(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Batch normalisation over real entries (Andrychowicz et al. 2020, as used by the paper); 0 elsewhere."""
  mean, std = masked_mean_std(x, mask)
  return (x - mean) / (std + eps) * mask


def explained_variance(predictions: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """1 - Var[target - prediction] / Var[target] over real entries (1 = perfect critic, <= 0 = useless)."""
  _, std_t = masked_mean_std(targets, mask)
  _, std_r = masked_mean_std(targets - predictions, mask)
  return 1.0 - std_r ** 2 / jnp.maximum(std_t ** 2, 1e-12)
