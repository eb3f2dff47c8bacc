"""C4 identities: Lemma 3.1 (KL decomposition), the A2 recursion, Lemma 4.1 (value difference), against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from mtpo_jax.tabular import mdp as mdp_lib
from mtpo_jax.tabular import values

from . import reference as ref


@pytest.mark.parametrize("instance", [ref.BASE, ref.SPARSE], ids=["base", "sparse_h3"])
def test_lemma_3_1_kl_decomposition_equals_trajectory_kl(instance: mdp_lib.LayeredMDP) -> None:
  rng = np.random.default_rng(0)
  pi, pi_ref = ref.random_policy(instance, rng), ref.random_policy(instance, rng)
  assert values.trajectory_kl(instance, pi, pi_ref) == pytest.approx(ref.trajectory_kl(instance, pi, pi_ref), abs=1e-13)
  assert values.trajectory_kl(instance, pi, pi) == pytest.approx(0.0, abs=1e-15)


def test_reach_probabilities_match_enumeration() -> None:
  pi = ref.random_policy(ref.SPARSE, np.random.default_rng(1))
  reach = values.reach_probs(ref.SPARSE, pi)
  np.testing.assert_allclose(reach[-1], ref.final_distribution(ref.SPARSE, pi), atol=1e-14)
  for d in reach:
    np.testing.assert_allclose(d.sum(-1), 1.0, atol=1e-14)


@pytest.mark.parametrize("instance", [ref.BASE, ref.SPARSE], ids=["base", "sparse_h3"])
def test_initial_value_is_regularized_win_probability(instance: mdp_lib.LayeredMDP) -> None:
  """A2: E[V_alpha^{pi,pi'}(x_1)] = P(pi succ pi') - alpha KL_p(pi||mu), with both sides from different code paths."""
  rng = np.random.default_rng(2)
  pi, pi_opp = ref.random_policy(instance, rng), ref.random_policy(instance, rng)
  _, v = values.preference_values(instance, pi, pi_opp, ref.ALPHA)
  expected = ref.win_probability(instance, pi, pi_opp) - ref.ALPHA * ref.trajectory_kl(instance, pi, instance.mu)
  assert values.expected_initial(instance, v[0]) == pytest.approx(expected, abs=1e-13)
  assert values.regularized_preference(instance, pi, pi_opp, ref.ALPHA) == pytest.approx(
    ref.regularized_preference(instance, pi, pi_opp, ref.ALPHA), abs=1e-13
  )


def test_q_recursion_by_hand_on_a_bandit() -> None:
  """H = 1: Q(y) = sum_y' P[y,y'] pi'(y') - alpha KL(pi||mu), computed by hand."""
  mu = np.array([[0.2, 0.3, 0.5]])
  pref = np.array([[[0.5, 0.9, 0.3], [0.1, 0.5, 0.6], [0.7, 0.4, 0.5]]])
  bandit = mdp_lib.bandit(mu, pref)
  pi, pi_opp = (np.array([[[0.6, 0.3, 0.1]]]),), (np.array([[[0.1, 0.1, 0.8]]]),)
  kl = 0.6 * np.log(0.6 / 0.2) + 0.3 * np.log(0.3 / 0.3) + 0.1 * np.log(0.1 / 0.5)
  win = [0.5 * 0.1 + 0.9 * 0.1 + 0.3 * 0.8, 0.1 * 0.1 + 0.5 * 0.1 + 0.6 * 0.8, 0.7 * 0.1 + 0.4 * 0.1 + 0.5 * 0.8]
  q, v = values.preference_values(bandit, pi, pi_opp, 0.25)
  np.testing.assert_allclose(q[0][0, 0], np.array(win) - 0.25 * kl, atol=1e-15)
  assert v[0][0, 0] == pytest.approx(np.dot([0.6, 0.3, 0.1], win) - 0.25 * kl, abs=1e-15)


@pytest.mark.parametrize("instance", [ref.BASE, ref.SPARSE], ids=["base", "sparse_h3"])
def test_lemma_4_1_value_difference(instance: mdp_lib.LayeredMDP) -> None:
  """P_a(pi > pibar) - P_a(pi' > pibar) = E_{pi'}[ sum_h <pi - pi', Q^{pi,pibar}> + a KL(pi'||mu) - a KL(pi||mu) ]."""
  rng = np.random.default_rng(3)
  pi, pi_prime, pi_bar = (ref.random_policy(instance, rng) for _ in range(3))
  alpha = ref.ALPHA
  lhs = ref.regularized_preference(instance, pi, pi_bar, alpha) - ref.regularized_preference(
    instance, pi_prime, pi_bar, alpha
  )
  q, _ = values.preference_values(instance, pi, pi_bar, alpha)
  reach = values.reach_probs(instance, pi_prime)
  rhs = 0.0
  for h in range(instance.horizon):
    inner = np.sum((pi[h] - pi_prime[h]) * q[h], axis=-1)
    inner += alpha * values.state_kl(pi_prime[h], instance.mu[h]) - alpha * values.state_kl(pi[h], instance.mu[h])
    rhs += np.einsum("c,cs,cs->", instance.rho, reach[h], inner)
  assert lhs == pytest.approx(float(rhs), abs=1e-13)
