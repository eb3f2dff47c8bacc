"""C2: an MTPO-independent Nash certificate (soft best response, exploitability, fixed point; Lemma 3.2, App. A.2)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtpo_jax.tabular import mdp as mdp_lib
from mtpo_jax.tabular import nash, values

from . import reference as ref


@pytest.fixture(scope="module")
def equilibrium() -> tuple:
  return nash.solve_equilibrium(ref.BASE, ref.ALPHA)


def test_equilibrium_certificate_is_zero_and_a_fixed_point(equilibrium: tuple) -> None:
  assert abs(float(nash.exploitability(ref.BASE, equilibrium, ref.ALPHA))) < 1e-13
  assert nash.fixed_point_residual(ref.BASE, equilibrium, ref.ALPHA) < 1e-13
  # The game value is 1/2 (Lemma 3.2): self-play is exactly 1/2 and no policy beats pi* (saddle point),
  # checked against the brute-force evaluation of P_alpha for random challengers.
  rng = np.random.default_rng(0)
  for _ in range(20):
    challenger = ref.random_policy(ref.BASE, rng, concentration=0.3)
    assert ref.regularized_preference(ref.BASE, challenger, equilibrium, ref.ALPHA) <= 0.5 + 1e-13


def test_exploitability_is_positive_away_from_the_equilibrium(equilibrium: tuple) -> None:
  rng = np.random.default_rng(1)
  others = [ref.BASE.mu] + [ref.random_policy(ref.BASE, rng) for _ in range(5)]
  for pi in others:
    gap = float(nash.exploitability(ref.BASE, pi, ref.ALPHA))
    assert gap > 1e-6
    assert nash.fixed_point_residual(ref.BASE, pi, ref.ALPHA) > 1e-4


def test_best_response_value_dominates_and_is_attained() -> None:
  """max_pi P_a(pi > pi*) = V(x_1) + a KL_p(pi*||mu): attained by the soft-optimal policy, never exceeded."""
  rng = np.random.default_rng(2)
  opponent = ref.random_policy(ref.BASE, rng)
  value = float(nash.best_response_value(ref.BASE, opponent, ref.ALPHA))
  response = nash.best_response(ref.BASE, opponent, ref.ALPHA)
  assert ref.regularized_preference(ref.BASE, response, opponent, ref.ALPHA) == pytest.approx(value, abs=1e-13)
  for _ in range(20):
    challenger = ref.random_policy(ref.BASE, rng, concentration=0.5)
    assert ref.regularized_preference(ref.BASE, challenger, opponent, ref.ALPHA) <= value + 1e-13


def test_soft_backward_induction_equals_trajectory_gibbs_value_on_a_tree() -> None:
  """Deterministic tree (null environment): max_pi E r - a KL_p(pi||mu) = a log sum_traj mu(traj) exp(r/a)."""
  rng = np.random.default_rng(3)
  num_actions, horizon, alpha = 3, 2, 0.3
  token_policy = tuple(rng.dirichlet(np.ones(num_actions), size=(1, num_actions**h)) for h in range(horizon))
  tree = mdp_lib.tree_mdp(token_policy, np.full((1, 9, 9), 0.5))
  reward = rng.normal(size=(1, 9))
  _, v = nash.soft_optimal(tree, reward, alpha)
  total = 0.0
  for seq_index, (a1, a2) in enumerate(itertools.product(range(num_actions), repeat=2)):
    prob = token_policy[0][0, 0, a1] * token_policy[1][0, a1, a2]
    total += prob * np.exp(reward[0, seq_index] / alpha)
  assert v[0][0, 0] == pytest.approx(alpha * np.log(total), abs=1e-13)


def test_two_action_bandit_equilibrium_closed_form() -> None:
  """H = 1, two actions: Q(0) - Q(1) = P[0,1] - 1/2 whatever pi is, so pi*(0) propto mu(0) exp((P01 - 1/2)/a)."""
  mu = np.array([[0.3, 0.7], [0.8, 0.2]])
  p01 = np.array([0.9, 0.35])
  pref = np.stack([np.array([[0.5, p], [1 - p, 0.5]]) for p in p01])
  alpha = 0.2
  bandit = mdp_lib.bandit(mu, pref)
  pi_star = nash.solve_equilibrium(bandit, alpha)
  odds = mu[:, 0] / mu[:, 1] * np.exp((p01 - 0.5) / alpha)
  np.testing.assert_allclose(pi_star[0][:, 0, 0], odds / (1 + odds), atol=1e-13)
  assert abs(float(nash.exploitability(bandit, pi_star, alpha))) < 1e-14


@pytest.mark.parametrize("alpha", [0.05, 0.2, 1.0])
def test_lemma_b5_equilibrium_stays_close_to_mu(alpha: float) -> None:
  """Lemma B.5: KL_p(pi*_alpha||mu) <= 1/(2 alpha), for an equilibrium certified by the exploitability gap."""
  pi_star = nash.solve_equilibrium(ref.BASE, alpha)
  assert abs(float(nash.exploitability(ref.BASE, pi_star, alpha))) < 1e-12
  assert 0.0 < values.trajectory_kl(ref.BASE, pi_star, ref.BASE.mu) <= 1 / (2 * alpha)
