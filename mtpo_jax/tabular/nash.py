"""An MTPO-independent Nash certificate: soft best response, exploitability, fixed point (digest C2, A3, A6).

- `soft_optimal`: KL-regularised optimum for a fixed terminal reward by soft backward induction,
      V(x_{H+1}) = r(x_{H+1});  Q(x_h, y) = E_{x'} V(x');  V(x_h) = alpha log sum_y mu(y|x_h) exp(Q(x_h,y)/alpha);
      pi(y|x_h) = mu(y|x_h) exp((Q(x_h,y) - V(x_h))/alpha).
  With r = P(. succ pi*) it is the best response to pi* (C2); with r = r_RLHF it is pi_alpha^{*,RLHF} (A5, C5).
- `best_response_value`: max_pi P_alpha(pi succ pi*) = E[V(x_1)] + alpha KL_p(pi*||mu) (C2).
- `exploitability`: best_response_value - 1/2 >= 0, with equality exactly at the unique regularised NE, since the
  game value is 1/2 (Lemma 3.2). Note P_alpha(pi* succ pi*) = 1/2 for every pi*, so the gap is never negative.
- `fixed_point_map`: pi -> normalise(mu exp(Q_alpha^{pi,pi}/alpha)); every NE is a fixed point (App. A.2).
- `solve_equilibrium`: the NE by damped Newton on the fixed-point equation in log space. It never runs MTPO; the
  answer is certified by `exploitability` (~1e-15 at convergence), which is what the tests rely on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from mtpo_jax.tabular import values
from mtpo_jax.tabular.mdp import LayeredMDP, Policy
from mtpo_jax.tabular.precision import exact

LOG_ZERO = -1e3  # log-probability standing for "outside supp(mu)"; exp(-1e3) == 0.0 in float64


def _soft_max_over_actions(q: jax.Array, mu: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array]:
  """(V, pi) of max_pi <pi,Q> - alpha KL(pi||mu) per state (Gibbs variational principle). q, mu: [..., A]."""
  logits = jnp.where(mu > 0, values.safe_log(mu) + q / alpha, -jnp.inf)
  v = alpha * jax.nn.logsumexp(logits, axis=-1)
  pi = jnp.where(mu > 0, jnp.exp(logits - v[..., None] / alpha), 0.0)
  return v, pi


@exact
def soft_optimal(mdp: LayeredMDP, terminal_reward: jax.Array, alpha: float) -> tuple:
  """Soft backward induction for a fixed terminal reward [C, S_{H+1}] (C2, C5).

  Returns (policy: H x [C, S_h, A], v: H+1 x [C, S_h]) where v[h] is the optimal regularised value
  max_pi E_pi[ r(x_{H+1}) - alpha sum_{h' >= h} KL(pi||mu)[x_h'] | x_h ].
  """
  v_next = jnp.asarray(terminal_reward)
  pis, vs = [], [v_next]
  for h in reversed(range(mdp.horizon)):
    q = jnp.einsum("csat,ct->csa", mdp.trans[h], v_next)
    v_next, pi = _soft_max_over_actions(q, mdp.mu[h], alpha)
    pis.append(pi)
    vs.append(v_next)
  return tuple(reversed(pis)), tuple(reversed(vs))


@exact
def best_response(mdp: LayeredMDP, pi_opp: Policy, alpha: float) -> Policy:
  """argmax_pi P_alpha(pi succ pi_opp): soft-optimal for the terminal reward P(x succ pi_opp) (C2)."""
  return soft_optimal(mdp, values.preference_reward(mdp, pi_opp), alpha)[0]


@exact
def best_response_value(mdp: LayeredMDP, pi_opp: Policy, alpha: float) -> jax.Array:
  """max_pi P_alpha(pi succ pi_opp) = E[V_soft(x_1)] + alpha KL_p(pi_opp||mu) (C2). -> scalar."""
  v = soft_optimal(mdp, values.preference_reward(mdp, pi_opp), alpha)[1]
  return values.expected_initial(mdp, v[0]) + alpha * values.trajectory_kl(mdp, pi_opp, mdp.mu)


@exact
def exploitability(mdp: LayeredMDP, pi: Policy, alpha: float) -> jax.Array:
  """max_pi' P_alpha(pi' succ pi) - 1/2 >= 0; zero exactly at the regularised NE (C2, Lemma 3.2). -> scalar."""
  return best_response_value(mdp, pi, alpha) - 0.5


@exact
def exploitability_curve(mdp: LayeredMDP, stacked: Policy, alpha: float) -> jax.Array:
  """Exploitability of every iterate of a stacked run (H x [T, C, S_h, A]). -> [T]."""
  return jax.vmap(lambda pi: exploitability(mdp, pi, alpha))(stacked)


@exact
def fixed_point_map(mdp: LayeredMDP, pi: Policy, alpha: float) -> Policy:
  """pi -> normalise(mu exp(Q_alpha^{pi,pi}/alpha)) per state (App. A.2, digest A3)."""
  q = values.preference_values(mdp, pi, pi, alpha)[0]
  return tuple(_soft_max_over_actions(qh, m, alpha)[1] for qh, m in zip(q, mdp.mu))


@exact
def fixed_point_residual(mdp: LayeredMDP, pi: Policy, alpha: float) -> jax.Array:
  """max |pi - fixed_point_map(pi)| over all states and actions (0 at every NE). -> scalar."""
  mapped = fixed_point_map(mdp, pi, alpha)
  return jnp.max(jnp.stack([jnp.max(jnp.abs(p - m)) for p, m in zip(pi, mapped)]))


def _log_policy(mdp: LayeredMDP, pi: Policy) -> Policy:
  return tuple(jnp.where(m > 0, values.safe_log(p), LOG_ZERO) for p, m in zip(pi, mdp.mu))


def _fixed_point_gap(mdp: LayeredMDP, z_flat: jax.Array, alpha: float) -> jax.Array:
  """G(z) = z - log fixed_point_map(softmax z), LOG_ZERO off supp(mu). z_flat: ravelled H x [C, S_h, A]."""
  _, unravel = ravel_pytree(tuple(jnp.asarray(m) for m in mdp.mu))
  pi = tuple(
    jnp.where(m > 0, jax.nn.softmax(jnp.where(m > 0, zh, -jnp.inf), axis=-1), 0.0)
    for zh, m in zip(unravel(z_flat), mdp.mu)
  )
  return z_flat - ravel_pytree(_log_policy(mdp, fixed_point_map(mdp, pi, alpha)))[0]


_gap = exact(_fixed_point_gap)
_gap_jacobian = exact(jax.jacfwd(_fixed_point_gap, argnums=1))


def solve_equilibrium(
  mdp: LayeredMDP, alpha: float, *, tol: float = 1e-12, max_iters: int = 100
) -> Policy:
  """The unique regularised NE (Lemma 3.2) by damped Newton on z = log fixed_point_map(softmax z), from z = log mu.

  Backtracking halves the step until ||G|| decreases. Raises RuntimeError if ||G||_inf does not reach `tol`.
  Returns numpy float64 policies; check them with `exploitability` (they are not trusted on their own).
  """
  flat_mu = np.concatenate([np.ravel(m) for m in mdp.mu])
  z = np.where(flat_mu > 0, np.log(np.where(flat_mu > 0, flat_mu, 1.0)), LOG_ZERO)
  for _ in range(max_iters):
    g = _gap(mdp, z, alpha)
    norm = np.max(np.abs(g))
    if norm < tol:
      splits = np.cumsum([m.size for m in mdp.mu])[:-1]
      logits = [zh.reshape(m.shape) for zh, m in zip(np.split(z, splits), mdp.mu)]
      return tuple(np.where(m > 0, np.exp(zh - _logsumexp_masked(zh, m)), 0.0) for zh, m in zip(logits, mdp.mu))
    step = np.linalg.solve(_gap_jacobian(mdp, z, alpha), g)
    scale = 1.0
    while scale > 1e-6:
      trial = z - scale * step
      if np.max(np.abs(_gap(mdp, trial, alpha))) < norm:
        break
      scale /= 2
    z = trial
  raise RuntimeError(f"Newton did not converge: ||G|| = {norm:.3g}")


def _logsumexp_masked(z: np.ndarray, mu: np.ndarray) -> np.ndarray:
  zz = np.where(mu > 0, z, -np.inf)
  top = zz.max(-1, keepdims=True)
  return top + np.log(np.exp(zz - top).sum(-1, keepdims=True))
