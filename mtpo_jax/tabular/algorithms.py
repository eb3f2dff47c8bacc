"""Exact tabular MTPO, MTPO-tau, multi-turn RLHF and single-turn Nash-MD (digest A1, A3, A4, A5).

All three multi-turn algorithms share the closed-form mirror-descent step of Eq. 2 (digest A3),

    pi_{t+1}(y|x) propto mu(y|x)^{m_t} pi_t(y|x)^{1 - m_t} exp(eta_t Q_t(x, y)),

and differ only in Q_t and the mixing exponent m_t:

    MTPO      Q_t = Q_alpha^{pi_t, pi_t}                     m_t = alpha eta_t            (Eq. 2, self-play)
    MTPO-tau  Q_t = Q_alpha^{pi_t^alpha, pi_t^alpha}        m_t = alpha eta_t  or  tau    (A4; pi_t^alpha below)
    RLHF      Q_t = Q_alpha^{pi_t, RLHF} (fixed reward r)   m_t = alpha eta_t            (A5, Thm B.6)

where pi_t^alpha propto pi_t^{1 - m_t} mu^{m_t} is the geometric mixture (A4). For MTPO-tau the update is
pi_{t+1} propto pi_t^alpha exp(eta_t Q_t), which is the same formula because the mixture's normaliser cancels.

Indexing and step sizes: iterates are pi_1 = mu, pi_2, ..., pi_T (the paper's t starts at 1), and the theory step is
eta_t = 2 / (alpha (t + 2)), so alpha eta_t = 2/(t+2) <= 2/3 < 1 as the analysis requires (A3).

Choices where the paper is silent:
- [inferred] MTPO-tau with a constant tau (the experiments' setting, A4) needs a constant step too; we use
  eta = tau / alpha, i.e. the theory relation m_t = alpha eta_t frozen at a constant. Its fixed point satisfies
  pi propto mu exp(Q^{pi^alpha,pi^alpha}/alpha) with pi^alpha != pi, so it is biased away from the NE by O(tau)
  (measured in tests/tabular and docs/tabular.md, not claimed by the paper).
- Runners return every iterate stacked on a leading axis (the instances are tiny), so curves are computed after.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from mtpo_jax.tabular import values
from mtpo_jax.tabular.mdp import LayeredMDP, Policy
from mtpo_jax.tabular.precision import exact


class Run(NamedTuple):
  """Iterates of a tabular run. policies: H x [T, C, S_h, A] (pi_1..pi_T); played: the policies that defined Q_t
  (pi_t for MTPO/RLHF, the mixture pi_t^alpha for MTPO-tau), same shape."""

  policies: Policy
  played: Policy


def theory_step_size(alpha: float | jax.Array, t: int | jax.Array) -> jax.Array:
  """eta_t = 2 / (alpha (t + 2)) (digest A3, Thm 4.2)."""
  return 2.0 / (alpha * (t + 2.0))


@exact
def geometric_mixture(pi: jax.Array, mu: jax.Array, weight: float | jax.Array) -> jax.Array:
  """pi^{1-w} mu^w, renormalised over the last axis, on supp(mu) (digest A4). [..., A] -> [..., A].

  With w < 1 the support is supp(pi) cap supp(mu); with w = 1 it is supp(mu) (0^0 = 1).
  """
  support = (mu > 0) & ((pi > 0) | (weight >= 1.0))
  logits = (1.0 - weight) * values.safe_log(pi) + weight * values.safe_log(mu)
  return _masked_softmax(logits, support)


@exact
def mirror_descent_step(
  pi: jax.Array, mu: jax.Array, q: jax.Array, eta: float | jax.Array, mix: float | jax.Array
) -> jax.Array:
  """Eq. 2: pi_{t+1} propto mu^{mix} pi_t^{1-mix} exp(eta Q_t), per state. [..., A] -> [..., A]."""
  support = (mu > 0) & ((pi > 0) | (mix >= 1.0))
  logits = mix * values.safe_log(mu) + (1.0 - mix) * values.safe_log(pi) + eta * q
  return _masked_softmax(logits, support)


def _masked_softmax(logits: jax.Array, support: jax.Array) -> jax.Array:
  logits = jnp.where(support, logits, -jnp.inf)
  weights = jnp.where(support, jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True)), 0.0)
  return weights / jnp.sum(weights, axis=-1, keepdims=True)


def _run(
  mdp: LayeredMDP,
  alpha: float,
  num_iters: int,
  eta: float | None,
  tau: float | None,
  q_fn: Callable[[Policy], tuple],
  play_mixture: bool,
) -> Run:
  """Shared scan: T = num_iters iterates starting from pi_1 = mu (digest A3)."""

  def body(pi: Policy, t: jax.Array) -> tuple[Policy, tuple[Policy, Policy]]:
    eta_t = theory_step_size(alpha, t) if eta is None else eta
    mix = alpha * eta_t if tau is None else tau
    played = tuple(geometric_mixture(p, m, mix) for p, m in zip(pi, mdp.mu)) if play_mixture else pi
    q = q_fn(played)
    nxt = tuple(mirror_descent_step(p, m, qh, eta_t, mix) for p, m, qh in zip(pi, mdp.mu, q))
    return nxt, (pi, played)

  pi_1 = tuple(jnp.asarray(m) for m in mdp.mu)
  ts = jnp.arange(1, num_iters + 1, dtype=jnp.float64)
  _, (policies, played) = jax.lax.scan(body, pi_1, ts)
  return Run(policies=policies, played=played)


@exact(static_argnames=("num_iters",))
def run_mtpo(mdp: LayeredMDP, alpha: float, num_iters: int, eta: float | None = None) -> Run:
  """MTPO (digest A3, Eq. 2): self-play Q_t = Q_alpha^{pi_t,pi_t}; eta=None is the theory schedule."""
  def self_play_q(pi: Policy) -> tuple:
    return values.preference_values(mdp, pi, pi, alpha)[0]

  return _run(mdp, alpha, num_iters, eta, None, self_play_q, play_mixture=False)


@exact(static_argnames=("num_iters",))
def run_mtpo_tau(mdp: LayeredMDP, alpha: float, num_iters: int, tau: float | None = None) -> Run:
  """MTPO-tau (digest A4): the mixture pi_t^alpha plays itself.

  tau=None: mixing exponent alpha eta_t with the theory eta_t (Thm B.2). tau > 0: the experiments' constant
  mixing, with the constant step eta = tau/alpha (module docstring). `Run.played` holds pi_t^alpha.
  """
  def mixture_self_play_q(mixture: Policy) -> tuple:
    return values.preference_values(mdp, mixture, mixture, alpha)[0]

  eta = None if tau is None else tau / alpha
  return _run(mdp, alpha, num_iters, eta, tau, mixture_self_play_q, play_mixture=True)


@exact(static_argnames=("num_iters",))
def run_rlhf(mdp: LayeredMDP, reward: jax.Array, alpha: float, num_iters: int, eta: float | None = None) -> Run:
  """Multi-turn RLHF (digest A5, Thm B.6): Eq. 2 with Q_alpha^{pi_t,RLHF} for a fixed terminal reward [C, S_{H+1}]."""
  def reward_q(pi: Policy) -> tuple:
    return values.regularized_values(mdp, pi, reward, alpha)[0]

  return _run(mdp, alpha, num_iters, eta, None, reward_q, play_mixture=False)


@exact(static_argnames=("num_iters",))
def nash_md(
  pref: jax.Array, mu: jax.Array, alpha: float, num_iters: int, eta: float | None = None
) -> tuple[jax.Array, jax.Array]:
  """Single-turn Nash-MD (Munos et al. 2023; digest A1), written directly for a bandit, batched over states.

    pi_t^alpha propto pi_t^{1 - alpha eta_t} mu^{alpha eta_t}
    pi_{t+1} = argmax_pi eta_t P(pi succ pi_t^alpha) - KL(pi||pi_t^alpha) propto pi_t^alpha exp(eta_t P pi_t^alpha)

  pref: [..., A, A], mu: [..., A]. Returns (policies, mixtures), each [T, ..., A], with pi_1 = mu.
  eta=None is the theory schedule 2/(alpha(t+2)).
  """

  def body(pi: jax.Array, t: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    eta_t = theory_step_size(alpha, t) if eta is None else eta
    mixture = geometric_mixture(pi, mu, alpha * eta_t)
    win = jnp.einsum("...ab,...b->...a", pref, mixture)
    logits = values.safe_log(mixture) + eta_t * win
    return _masked_softmax(logits, mixture > 0), (pi, mixture)

  ts = jnp.arange(1, num_iters + 1, dtype=jnp.float64)
  _, (policies, mixtures) = jax.lax.scan(body, jnp.asarray(mu), ts)
  return policies, mixtures
