"""Exact preference values, reach probabilities and trajectory KL in a layered MDP (digest A2, A6).

- `reach_probs`: d_h^pi(x) = Pr_{pi,p}[x_h = x | c], layer by layer forward.
- `regularized_values`: the backward recursion of Lemma 4.1 / E.4 (A2),
      V(x_{H+1}) = r(x_{H+1});  Q(x_h, y) = E_{x' ~ p(.|x_h,y)} V(x') - alpha KL(pi||mu)[x_h];  V(x_h) = <pi, Q>[x_h],
  with the terminal reward r = P(x_{H+1} succ pi') for the preference values Q_alpha^{pi,pi'} (A2) or a fixed reward
  for multi-turn RLHF (A5).
- `trajectory_kl`: KL_p(pi||pi') = E_{pi,p}[ sum_h KL(pi||pi')[x_h] ] (Lemma 3.1).
- `regularized_preference`: P_alpha(pi succ pi') = P(pi succ pi') - alpha KL_p(pi||mu) + alpha KL_p(pi'||mu) (A1).

All scalars are expectations over contexts `c ~ rho`. Shapes: see `mdp.LayeredMDP`; a policy is H x [C, S_h, A].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mtpo_jax.tabular.mdp import LayeredMDP, Policy
from mtpo_jax.tabular.precision import exact


def safe_log(x: jax.Array) -> jax.Array:
  """log(x) where x > 0 and 0 elsewhere (callers mask the zero entries); keeps gradients finite."""
  return jnp.log(jnp.where(x > 0, x, 1.0))


@exact
def state_kl(p: jax.Array, q: jax.Array) -> jax.Array:
  """Per-state KL(p||q) over the last axis, with 0 log 0 = 0. [..., A] -> [...]."""
  return jnp.sum(jnp.where(p > 0, p * (safe_log(p) - safe_log(q)), 0.0), axis=-1)


@exact
def reach_probs(mdp: LayeredMDP, pi: Policy) -> tuple:
  """Reach probabilities d_h^pi: H+1 x [C, S_h] (d_1 = init; d_{H+1} is the final-state distribution)."""
  d = jnp.asarray(mdp.init)
  out = [d]
  for h in range(mdp.horizon):
    d = jnp.einsum("cs,csa,csat->ct", d, pi[h], mdp.trans[h])
    out.append(d)
  return tuple(out)


@exact
def preference_reward(mdp: LayeredMDP, pi_opp: Policy) -> jax.Array:
  """Terminal reward of the preference game, r(x) = P(x succ pi') = sum_x' P[x,x'] d^{pi'}(x'). -> [C, S_{H+1}]."""
  d_opp = reach_probs(mdp, pi_opp)[-1]
  return jnp.einsum("cxy,cy->cx", mdp.pref, d_opp)


@exact
def regularized_values(mdp: LayeredMDP, pi: Policy, terminal_reward: jax.Array, alpha: float) -> tuple:
  """Backward recursion of Lemma 4.1 / E.4 (digest A2) for a fixed terminal reward.

  terminal_reward: [C, S_{H+1}].  Returns (q, v): q is H x [C, S_h, A] and v is H+1 x [C, S_h], v[H] = reward.
  Q includes the action-independent -alpha KL(pi||mu)[x_h] of its own state, exactly as in A2.
  """
  v_next = jnp.asarray(terminal_reward)
  qs, vs = [], [v_next]
  for h in reversed(range(mdp.horizon)):
    kl = state_kl(pi[h], mdp.mu[h])
    q = jnp.einsum("csat,ct->csa", mdp.trans[h], v_next) - alpha * kl[..., None]
    v_next = jnp.sum(pi[h] * q, axis=-1)
    qs.append(q)
    vs.append(v_next)
  return tuple(reversed(qs)), tuple(reversed(vs))


@exact
def preference_values(mdp: LayeredMDP, pi: Policy, pi_opp: Policy, alpha: float) -> tuple:
  """(Q_alpha^{pi,pi'}, V_alpha^{pi,pi'}) of digest A2: the comparison policy pi' starts from x_1."""
  return regularized_values(mdp, pi, preference_reward(mdp, pi_opp), alpha)


@exact
def expected_initial(mdp: LayeredMDP, v1: jax.Array) -> jax.Array:
  """E_{c ~ rho, x_1 ~ init}[ v1(c, x_1) ]. v1: [C, S_1] -> scalar."""
  return jnp.einsum("c,cs,cs->", mdp.rho, mdp.init, v1)


@exact
def trajectory_kl_per_context(mdp: LayeredMDP, pi: Policy, pi_ref: Policy) -> jax.Array:
  """Lemma 3.1: KL_p(pi||pi')[c] = sum_h sum_x d_h^pi(x) KL(pi||pi')[x]. -> [C]."""
  reach = reach_probs(mdp, pi)
  return sum(jnp.einsum("cs,cs->c", reach[h], state_kl(pi[h], pi_ref[h])) for h in range(mdp.horizon))


@exact
def trajectory_kl(mdp: LayeredMDP, pi: Policy, pi_ref: Policy) -> jax.Array:
  """Lemma 3.1 averaged over contexts: KL_p(pi||pi') = E_c[ KL_p(pi||pi')[c] ]. -> scalar."""
  return jnp.dot(mdp.rho, trajectory_kl_per_context(mdp, pi, pi_ref))


@exact
def expected_terminal(mdp: LayeredMDP, pi: Policy, reward: jax.Array) -> jax.Array:
  """E_{pi,p}[ reward(x_{H+1}) ]. reward: [C, S_{H+1}] -> scalar."""
  return jnp.einsum("c,cx,cx->", mdp.rho, reach_probs(mdp, pi)[-1], reward)


@exact
def win_probability(mdp: LayeredMDP, pi: Policy, pi_opp: Policy) -> jax.Array:
  """P(pi succ pi') = E_c E_{x~pi, x'~pi'}[ P(x succ x') ] (digest A1). -> scalar."""
  d = reach_probs(mdp, pi)[-1]
  d_opp = reach_probs(mdp, pi_opp)[-1]
  return jnp.einsum("c,cx,cxy,cy->", mdp.rho, d, mdp.pref, d_opp)


@exact
def regularized_preference(mdp: LayeredMDP, pi: Policy, pi_opp: Policy, alpha: float) -> jax.Array:
  """P_alpha(pi succ pi') = P(pi succ pi') - alpha KL_p(pi||mu) + alpha KL_p(pi'||mu) (digest A1). -> scalar."""
  return (
    win_probability(mdp, pi, pi_opp)
    - alpha * trajectory_kl(mdp, pi, mdp.mu)
    + alpha * trajectory_kl(mdp, pi_opp, mdp.mu)
  )


@exact
def trajectory_kl_curve(mdp: LayeredMDP, reference: Policy, stacked: Policy) -> jax.Array:
  """KL_p(reference || pi_t) for every iterate of a stacked run (H x [T, C, S_h, A]). -> [T]."""
  return jax.vmap(lambda pi: trajectory_kl(mdp, reference, pi))(stacked)
