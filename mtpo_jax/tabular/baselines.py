"""Reward-model and turn-level baselines the paper compares MTPO against (digest A1, A5, A8; claims C6, C8).

- `fit_bradley_terry`: the RLHF reward, fitted with the BT cross-entropy loss (A1) to pairs drawn from a data
  distribution (for multi-turn RLHF: final states of trajectories of mu, A5).
- `turn_level_rlhf` / `turn_level_nash_md`: the single-turn baselines of A8. Each state x_h is treated as its own
  contextual bandit, labelled by a turn-level judge P_turn(y succ y' | x_h); RLHF fits a BT reward per state and
  takes the KL-regularised optimum, Nash-MD runs single-turn Nash-MD per state.
- `continuation_turn_preference`: the "single-turn-value" judge of A8: both candidate actions are continued with a
  fixed policy (the data policy) to the end and the conversation-level preference is applied to the final states.

Choices where the paper is silent:
- [inferred] BT is fitted on the population (infinitely many pairs, weighted by the data distribution) rather than
  a finite sample, so results are deterministic. A tiny ridge (default 1e-8 * ||r||^2) fixes the additive gauge and
  the reward of states the data never reaches; it moves the fitted reward by O(ridge).
- [NOT FOUND] The alpha and the loop of the paper's single-turn runs; here they use the same alpha as MTPO and the
  exact per-state optimum (RLHF) or the last Nash-MD iterate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtpo_jax.tabular import algorithms, values
from mtpo_jax.tabular.mdp import LayeredMDP, Policy
from mtpo_jax.tabular.precision import exact


def _bt_loss(reward: jax.Array, pref: jax.Array, weights: jax.Array, ridge: float) -> jax.Array:
  """E_{x,x' ~ w}[ -P[x,x'] log sigma(r_x - r_x') ] + ridge ||r||^2 (ordered pairs cover both labels)."""
  diff = reward[:, None] - reward[None, :]
  pair_w = weights[:, None] * weights[None, :]
  return -jnp.sum(pair_w * pref * jax.nn.log_sigmoid(diff)) + ridge * jnp.sum(reward**2)


@exact(static_argnames=("num_newton",))
def fit_bradley_terry(
  pref: jax.Array, weights: jax.Array, ridge: float = 1e-8, num_newton: int = 60
) -> jax.Array:
  """Population BT fit (digest A1): pref [..., N, N] (labels), weights [..., N] (data distribution) -> r [..., N].

  Newton's method on the convex loss; each step is clipped to max-norm 1 so that it cannot overshoot early.
  """
  batch = pref.shape[:-2]
  n = pref.shape[-1]
  pref_flat = pref.reshape((-1, n, n))
  w_flat = weights.reshape((-1, n))

  def fit_one(p: jax.Array, w: jax.Array) -> jax.Array:
    grad = jax.grad(_bt_loss)
    hess = jax.hessian(_bt_loss)

    def newton(_: int, r: jax.Array) -> jax.Array:
      step = jnp.linalg.solve(hess(r, p, w, ridge), grad(r, p, w, ridge))
      return r - step / jnp.maximum(1.0, jnp.max(jnp.abs(step)))

    return jax.lax.fori_loop(0, num_newton, newton, jnp.zeros(n))

  return jax.vmap(fit_one)(pref_flat, w_flat).reshape(batch + (n,))


@exact
def final_state_reward_model(mdp: LayeredMDP, data_policy: Policy, ridge: float = 1e-8) -> jax.Array:
  """r_RLHF over final states, BT-fitted to pairs of final states of `data_policy` (digest A5). -> [C, S_{H+1}]."""
  weights = values.reach_probs(mdp, data_policy)[-1]
  return fit_bradley_terry(mdp.pref, weights, ridge)


@exact
def continuation_turn_preference(mdp: LayeredMDP, continuation: Policy) -> tuple:
  """The "single-turn-value" judge (digest A8): P_turn(y succ y' | x_h) = P(final of (x_h,y) succ final of (x_h,y')),
  both continued with `continuation`. Returns H x [C, S_h, A, A].

  Backward recursion for the final-state distributions: G_{H+1}(x) = e_x, F_h(x,y) = sum_x' p(x'|x,y) G_{h+1}(x'),
  G_h(x) = sum_y pi(y|x) F_h(x,y).
  """
  g = jnp.broadcast_to(jnp.eye(mdp.layer_sizes[-1]), (mdp.num_contexts,) + (mdp.layer_sizes[-1],) * 2)
  out = []
  for h in reversed(range(mdp.horizon)):
    f = jnp.einsum("csat,ctx->csax", mdp.trans[h], g)
    out.append(jnp.einsum("csax,cxz,csbz->csab", f, mdp.pref, f))
    g = jnp.einsum("csa,csax->csx", continuation[h], f)
  return tuple(reversed(out))


@exact
def turn_level_rlhf(mdp: LayeredMDP, turn_pref: tuple, alpha: float, ridge: float = 1e-8) -> Policy:
  """Single-turn RLHF per state (digest A8): r_h(x,.) = BT fit of P_turn(.|x) on pairs from mu(.|x), then
  pi(y|x) propto mu(y|x) exp(r_h(x,y)/alpha). turn_pref: H x [C, S_h, A, A] -> H x [C, S_h, A]."""
  out = []
  for h in range(mdp.horizon):
    r = fit_bradley_terry(turn_pref[h], mdp.mu[h], ridge)
    logits = jnp.where(mdp.mu[h] > 0, values.safe_log(mdp.mu[h]) + r / alpha, -jnp.inf)
    out.append(jax.nn.softmax(logits, axis=-1))
  return tuple(out)


@exact(static_argnames=("num_iters",))
def turn_level_nash_md(mdp: LayeredMDP, turn_pref: tuple, alpha: float, num_iters: int = 2000) -> Policy:
  """Single-turn Nash-MD per state (digest A8): last iterate of `algorithms.nash_md` on each state's bandit."""
  return tuple(
    algorithms.nash_md(turn_pref[h], mdp.mu[h], alpha, num_iters)[0][-1] for h in range(mdp.horizon)
  )
