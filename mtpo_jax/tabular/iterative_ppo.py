"""Iterative PPO in a tabular discounted MDP (digest B1-B4, claims C10, C11).

Algorithm 1 (B3) with its PPO step idealised as in Theorem 2 (B4): alternate
  1. policy evaluation: Q^{pi_i} exactly (linear solve) or by Monte-Carlo returns G = sum_j gamma^j r_{j} (B2,
     Observation 2), and
  2. the per-state KL-regularised improvement
         pi_{i+1}(.|s) = argmax_pi' E_{a ~ pi'} Qhat(s,a) - beta KL(pi'||pi_i)(s)  =  pi_i exp(Qhat(s,.)/beta) / Z,
     the exact maximiser (delta_s = 0 in Thm 2).

Choices where the paper is silent:
- [inferred] Thm 2 writes the KL as KL(pi||pi') in L_s and KL(pi'||pi) in its conclusion; the closed-form step
  above maximises the KL(pi'||pi) form, and the bound only needs KL >= 0 (digest B4).
- [inferred] Rewards are R(s, a) (the SR setting's R(s_i) = o_i is the special case of a state reward); there is no
  absorbing state unless the transition kernel has one. Monte-Carlo rollouts are truncated at `horizon` steps, which
  biases Q by at most gamma^horizon max|R| / (1 - gamma).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax.tabular import values
from mtpo_jax.tabular.precision import exact


@dataclasses.dataclass(frozen=True)
class DiscountedMDP:
  """(S, A, P, R, gamma) of digest B1. trans: [S, A, S], reward: [S, A], gamma: scalar in [0, 1)."""

  trans: np.ndarray
  reward: np.ndarray
  gamma: float


jax.tree_util.register_dataclass(DiscountedMDP, data_fields=["trans", "reward", "gamma"], meta_fields=[])


def random_discounted_mdp(seed: int, num_states: int = 6, num_actions: int = 3, gamma: float = 0.8) -> DiscountedMDP:
  """Dirichlet(0.5) transitions and a sparse binary reward (about 1/3 of state-action pairs pay 1, like o_i, B1)."""
  rng = np.random.default_rng(seed)
  trans = rng.dirichlet(np.full(num_states, 0.5), size=(num_states, num_actions))
  reward = (rng.uniform(size=(num_states, num_actions)) < 1 / 3).astype(np.float64)
  return DiscountedMDP(trans=trans, reward=reward, gamma=float(gamma))


@exact
def policy_evaluation(mdp: DiscountedMDP, pi: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Exact (V^pi [S], Q^pi [S, A]): V = (I - gamma P_pi)^{-1} r_pi, Q = R + gamma P V."""
  p_pi = jnp.einsum("sa,sat->st", pi, mdp.trans)
  r_pi = jnp.sum(pi * mdp.reward, axis=-1)
  v = jnp.linalg.solve(jnp.eye(p_pi.shape[0]) - mdp.gamma * p_pi, r_pi)
  return v, mdp.reward + mdp.gamma * jnp.einsum("sat,t->sa", mdp.trans, v)


@exact
def discounted_occupancy(mdp: DiscountedMDP, pi: jax.Array) -> jax.Array:
  """d^pi_{s0}(s) = (1 - gamma) sum_t gamma^t P(s_t = s | s_0, pi) for every start state (B4). -> [S0, S]."""
  p_pi = jnp.einsum("sa,sat->st", pi, mdp.trans)
  n = p_pi.shape[0]
  return (1.0 - mdp.gamma) * jnp.linalg.inv(jnp.eye(n) - mdp.gamma * p_pi)


@exact(static_argnames=("num_rollouts", "horizon"))
def monte_carlo_q(
  mdp: DiscountedMDP, pi: jax.Array, key: jax.Array, num_rollouts: int, horizon: int
) -> jax.Array:
  """Monte-Carlo policy evaluation (B2 Observation 2, B3 line 5): mean discounted return of `num_rollouts`
  on-policy rollouts from every (s, a), truncated at `horizon` steps. pi: [S, A] -> [S, A].

  Sampling is by inverse CDF from uniforms drawn up front. On CPU prefer an "rbg" key (see run_iterative_ppo).
  """
  num_states, num_actions = mdp.reward.shape
  trans_cdf = jnp.cumsum(mdp.trans, axis=-1)  # [S, A, S]
  pi_cdf = jnp.cumsum(pi, axis=-1)  # [S, A]
  # All randomness drawn up front (inverse-CDF sampling); the scan below is then pure indexing.
  uniforms = jax.random.uniform(key, (horizon, 2, num_states, num_actions, num_rollouts))

  def step(carry: tuple, u: jax.Array) -> tuple:
    s, a, discount, ret = carry  # each [S, A, N]
    ret = ret + discount * mdp.reward[s, a]
    s = jnp.minimum(jnp.sum(u[0][..., None] > trans_cdf[s, a], axis=-1), num_states - 1)
    a = jnp.minimum(jnp.sum(u[1][..., None] > pi_cdf[s], axis=-1), num_actions - 1)
    return (s, a, discount * mdp.gamma, ret), None

  shape = (num_states, num_actions, num_rollouts)
  s0 = jnp.broadcast_to(jnp.arange(num_states)[:, None, None], shape)
  a0 = jnp.broadcast_to(jnp.arange(num_actions)[None, :, None], shape)
  init = (s0, a0, jnp.asarray(1.0), jnp.zeros(shape))
  per_rollout = jax.lax.scan(step, init, uniforms)[0][3]
  return per_rollout.mean(-1)


@exact
def kl_improvement_step(pi: jax.Array, q_hat: jax.Array, beta: float) -> jax.Array:
  """pi'(a|s) propto pi(a|s) exp(Qhat(s,a)/beta): argmax of E_pi' Qhat - beta KL(pi'||pi) per state (Thm 2).
  [..., A] -> [..., A]."""
  logits = jnp.where(pi > 0, values.safe_log(pi) + q_hat / beta, -jnp.inf)
  return jax.nn.softmax(logits, axis=-1)


class PPORun(NamedTuple):
  """policies: [T+1, S, A] (pi_0..pi_T); values: [T+1, S] (exact V^{pi_i}); q_errors: [T] (||Qhat - Q^{pi_i}||_inf)."""

  policies: jax.Array
  values: jax.Array
  q_errors: jax.Array


@exact(static_argnames=("num_iters", "num_rollouts", "horizon"))
def run_iterative_ppo(
  mdp: DiscountedMDP,
  pi_0: jax.Array,
  beta: float,
  num_iters: int,
  key: jax.Array | None = None,
  num_rollouts: int = 0,
  horizon: int = 0,
) -> PPORun:
  """Algorithm 1 (B3) with exact Q (key=None) or Monte-Carlo Q (key, num_rollouts, horizon), idealised PPO step.

  pi_0: [S, A]. On CPU prefer `jax.random.key(seed, impl="rbg")`: threefry takes seconds to compile here.
  """

  def body(pi: jax.Array, k: jax.Array) -> tuple[jax.Array, tuple]:
    v, q = policy_evaluation(mdp, pi)
    q_hat = q if key is None else monte_carlo_q(mdp, pi, k, num_rollouts, horizon)
    nxt = kl_improvement_step(pi, q_hat, beta)
    return nxt, (nxt, policy_evaluation(mdp, nxt)[0], jnp.max(jnp.abs(q_hat - q)))

  keys = jnp.arange(num_iters) if key is None else jax.random.split(key, num_iters)
  pi_0 = jnp.asarray(pi_0)
  _, (pis, vs, errs) = jax.lax.scan(body, pi_0, keys)
  v_0 = policy_evaluation(mdp, pi_0)[0]
  return PPORun(
    policies=jnp.concatenate([pi_0[None], pis]), values=jnp.concatenate([v_0[None], vs]), q_errors=errs
  )
