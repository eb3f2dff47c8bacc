"""C1 (MTPO last-iterate convergence), C3 (MTPO-tau, Nash-MD at H = 1), C4 (bounds and supports along the run).

The reference equilibrium comes from `nash.solve_equilibrium` (Newton, no MTPO) and is trusted only because its
exploitability gap, computed by soft backward induction, is zero to 1e-13.
"""

from __future__ import annotations

import numpy as np
import pytest

from mtpo_jax.tabular import algorithms, nash, values
from mtpo_jax.tabular import mdp as mdp_lib

from . import reference as ref

NUM_ITERS = 2000


@pytest.fixture(scope="module")
def equilibrium() -> tuple:
  pi_star = nash.solve_equilibrium(ref.BASE, ref.ALPHA)
  assert abs(float(nash.exploitability(ref.BASE, pi_star, ref.ALPHA))) < 1e-13
  return pi_star


def _theory_bound(constant: float, instance: mdp_lib.LayeredMDP, alpha: float, ts: np.ndarray) -> np.ndarray:
  """constant * H * Qbar^2 / (alpha^2 (t + 1)) (Thm 4.2 with constant 32, Thm B.2 with 9)."""
  return constant * instance.horizon * mdp_lib.q_bar(instance, alpha) ** 2 / (alpha**2 * (ts + 1))


def test_c1_mtpo_last_iterate_below_bound_with_1_over_t_rate(equilibrium: tuple) -> None:
  run = algorithms.run_mtpo(ref.BASE, ref.ALPHA, NUM_ITERS)
  kl = values.trajectory_kl_curve(ref.BASE, equilibrium, run.policies)
  ts = np.arange(1, NUM_ITERS + 1)
  assert np.all(kl <= _theory_bound(32, ref.BASE, ref.ALPHA, ts))
  # O(1/t) or faster: log-log slope over the range where KL is above float64 noise.
  fit = (ts >= 10) & (kl > 1e-11)
  assert fit.sum() > 50
  assert ref.loglog_slope(ts[fit], kl[fit]) <= -1.0
  assert kl[-1] < 1e-12
  # Last iterate, not an average: every late iterate is close, and exploitability vanishes.
  assert np.all(kl[NUM_ITERS // 2 :] < 1e-10)
  assert float(nash.exploitability(ref.BASE, mdp_lib.index_policy(run.policies, -1), ref.ALPHA)) < 1e-12


def test_c1_constant_step_converges(equilibrium: tuple) -> None:
  run = algorithms.run_mtpo(ref.BASE, ref.ALPHA, 200, eta=0.5 / ref.ALPHA)
  kl = values.trajectory_kl_curve(ref.BASE, equilibrium, run.policies)
  assert kl[-1] < 1e-13
  assert kl[-1] < kl[0]


def test_c3_mtpo_tau_bound_and_same_equilibrium(equilibrium: tuple) -> None:
  run = algorithms.run_mtpo_tau(ref.BASE, ref.ALPHA, NUM_ITERS)
  ts = np.arange(1, NUM_ITERS + 1)
  kl_mixture = values.trajectory_kl_curve(ref.BASE, equilibrium, run.played)
  kl_policy = values.trajectory_kl_curve(ref.BASE, equilibrium, run.policies)
  assert np.all(kl_mixture <= _theory_bound(9, ref.BASE, ref.ALPHA, ts))  # Thm B.2 / Cor B.4
  h, log_mu_min = ref.BASE.horizon, np.log(mdp_lib.mu_min(ref.BASE))
  thm_b3 = 8 * h / (ts + 1) * max(1 / ref.ALPHA**2, h**2 * log_mu_min**2)
  assert np.all(kl_policy <= thm_b3)  # Thm B.3
  fit = (ts >= 10) & (kl_mixture > 1e-11)
  assert ref.loglog_slope(ts[fit], kl_mixture[fit]) <= -1.0
  assert kl_mixture[-1] < 1e-8 and kl_policy[-1] < 1e-10


def _nash_md_numpy(pref: np.ndarray, mu: np.ndarray, alpha: float, num_iters: int) -> np.ndarray:
  """Single-turn Nash-MD (Munos et al.) for one bandit, written out in numpy: returns [T, A]."""
  pi, out = mu.copy(), []
  for t in range(1, num_iters + 1):
    out.append(pi)
    eta = 2 / (alpha * (t + 2))
    mix = pi ** (1 - alpha * eta) * mu ** (alpha * eta)
    mix /= mix.sum()
    nxt = mix * np.exp(eta * pref @ mix)
    pi = nxt / nxt.sum()
  return np.stack(out)


def test_c3_mtpo_tau_with_h1_is_nash_md() -> None:
  rng = np.random.default_rng(4)
  mu = rng.dirichlet(np.ones(4), size=2)
  bandit = mdp_lib.bandit(mu, mdp_lib.random_preference(rng, 2, 4))
  run = algorithms.run_mtpo_tau(bandit, 0.3, 300)
  library, _ = algorithms.nash_md(bandit.pref, mu, 0.3, 300)
  for c in range(2):
    expected = _nash_md_numpy(bandit.pref[c], mu[c], 0.3, 300)
    np.testing.assert_allclose(run.policies[0][:, c, 0], expected, atol=1e-13)
    np.testing.assert_allclose(library[:, c], expected, atol=1e-13)


def test_c3_constant_tau_converges_to_a_biased_fixed_point(equilibrium: tuple) -> None:
  """Not covered by the theorem (digest A4): with constant tau (eta = tau/alpha) the iterates converge to
  pi propto mu exp(Q_alpha^{pi^tau, pi^tau}/alpha), whose exploitability is positive and shrinks with tau."""
  gaps = []
  for tau in (0.2, 0.05):
    run = algorithms.run_mtpo_tau(ref.BASE, ref.ALPHA, 400, tau=tau)
    last, mixture = mdp_lib.index_policy(run.policies, -1), mdp_lib.index_policy(run.played, -1)
    q, _ = values.preference_values(ref.BASE, mixture, mixture, ref.ALPHA)
    for h in range(ref.BASE.horizon):
      target = ref.BASE.mu[h] * np.exp(q[h] / ref.ALPHA)
      np.testing.assert_allclose(last[h], target / target.sum(-1, keepdims=True), atol=1e-12)
    gaps.append(float(nash.exploitability(ref.BASE, last, ref.ALPHA)))
  assert gaps[0] > gaps[1] > 0.0


def test_c4_bounds_and_supports_along_the_run() -> None:
  """Lemmas E.8-E.10 and supp(pi_t) within supp(mu), on an H = 3 instance whose mu has zeros."""
  instance, alpha = ref.SPARSE, 0.2
  run = algorithms.run_mtpo(instance, alpha, 300)
  h_len, log_mu_min = instance.horizon, np.log(mdp_lib.mu_min(instance))
  assert any((m == 0).any() for m in instance.mu)
  for t in [0, 1, 2, 5, 10, 30, 100, 299]:
    pi = mdp_lib.index_policy(run.policies, t)
    q, _ = values.preference_values(instance, pi, pi, alpha)
    for h in range(h_len):
      on = instance.mu[h] > 0
      assert np.all(pi[h][~on] == 0.0)
      np.testing.assert_allclose(pi[h].sum(-1), 1.0, atol=1e-13)
      assert np.all(q[h] <= 1.0) and np.all(q[h] >= alpha * h_len * log_mu_min)  # E.8
      log_ratio = np.log(pi[h][on]) - np.log(instance.mu[h][on])
      assert np.all(log_ratio <= -log_mu_min + 1e-12)  # E.10
      assert np.all(log_ratio >= h_len * log_mu_min - 1 / alpha)
      adv = q[h][on] - alpha * log_ratio
      assert np.all(adv >= alpha * (h_len + 1) * log_mu_min)  # E.9
      assert np.all(adv <= 2 - alpha * h_len * log_mu_min)
