"""C10 (Iterative PPO: Thm 1, Thm 2, convergence) and C11 (token-level optimum = response-level step)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mtpo_jax.tabular import iterative_ppo as ppo
from mtpo_jax.tabular import mdp as mdp_lib
from mtpo_jax.tabular import nash

MDP = ppo.random_discounted_mdp(0, num_states=6, num_actions=3, gamma=0.8)
UNIFORM = np.full((6, 3), 1 / 3)


def _optimal_values(mdp: ppo.DiscountedMDP) -> np.ndarray:
  """Value iteration in numpy (the independent reference for 'reaches the optimum')."""
  v = np.zeros(mdp.reward.shape[0])
  for _ in range(400):
    v = np.max(mdp.reward + mdp.gamma * mdp.trans @ v, axis=1)
  return v


def _thm2_lower_bound(mdp: ppo.DiscountedMDP, pi: np.ndarray, pi_new: np.ndarray, beta: float, eps_q: float):
  """1/(1-gamma) E_{s ~ d^{pi'}_{s0}}[ beta KL(pi'||pi)(s) - 2 eps_Q ] for every s0 (delta_s = 0)."""
  on = pi_new > 0  # exp(Q/beta) underflows to exact zeros for small beta; 0 log 0 = 0
  kl = np.sum(np.where(on, pi_new * np.log(np.where(on, pi_new, 1.0) / np.where(on, pi, 1.0)), 0.0), axis=-1)
  return ppo.discounted_occupancy(mdp, pi_new) @ (beta * kl - 2 * eps_q) / (1 - mdp.gamma)


def test_exact_evaluation_solves_bellman_and_performance_difference_lemma() -> None:
  rng = np.random.default_rng(0)
  pi, pi_new = rng.dirichlet(np.ones(3), size=6), rng.dirichlet(np.ones(3), size=6)
  v, q = ppo.policy_evaluation(MDP, pi)
  np.testing.assert_allclose(q, MDP.reward + MDP.gamma * MDP.trans @ v, atol=1e-12)
  np.testing.assert_allclose(v, np.sum(pi * q, -1), atol=1e-12)
  v_new, _ = ppo.policy_evaluation(MDP, pi_new)
  advantage = np.sum(pi_new * q, -1) - v
  pdl = ppo.discounted_occupancy(MDP, pi_new) @ advantage / (1 - MDP.gamma)
  np.testing.assert_allclose(v_new - v, pdl, atol=1e-12)


def test_theorem_1_policy_improvement() -> None:
  """E_{pi'} Q^pi >= E_pi Q^pi at every state implies V^{pi'} >= V^pi at every state."""
  rng = np.random.default_rng(1)
  for _ in range(20):
    pi = rng.dirichlet(np.ones(3), size=6)
    _, q = ppo.policy_evaluation(MDP, pi)
    greedy = np.eye(3)[np.argmax(q, -1)]
    pi_new = 0.5 * pi + 0.5 * greedy  # improves the expected Q at every state
    assert np.all(np.sum(pi_new * q, -1) >= np.sum(pi * q, -1) - 1e-15)
    assert np.all(ppo.policy_evaluation(MDP, pi_new)[0] >= ppo.policy_evaluation(MDP, pi)[0] - 1e-12)


def test_c10_exact_iterative_ppo_improves_monotonically_and_reaches_optimum() -> None:
  run = ppo.run_iterative_ppo(MDP, UNIFORM, 0.02, 60)
  assert np.all(np.diff(run.values, axis=0) >= -1e-12)  # every start state, every iteration
  np.testing.assert_allclose(run.values[-1], _optimal_values(MDP), atol=1e-6)
  for i in range(0, 60, 10):  # Thm 2 with eps_Q = 0: V^{pi'} - V^{pi} >= E_d[beta KL] / (1 - gamma)
    gain = run.values[i + 1] - run.values[i]
    bound = _thm2_lower_bound(MDP, run.policies[i], run.policies[i + 1], 0.02, 0.0)
    assert np.all(gain >= bound - 1e-12)


def test_c10_theorem_2_slack_with_injected_q_noise() -> None:
  rng = np.random.default_rng(2)
  beta, eps = 0.1, 0.3
  pi = UNIFORM
  decreased = False
  for _ in range(15):
    _, q = ppo.policy_evaluation(MDP, pi)
    q_hat = q + rng.uniform(-eps, eps, size=q.shape)
    eps_q = float(np.max(np.abs(q_hat - q)))
    pi_new = ppo.kl_improvement_step(pi, q_hat, beta)
    gain = ppo.policy_evaluation(MDP, pi_new)[0] - ppo.policy_evaluation(MDP, pi)[0]
    assert np.all(gain >= _thm2_lower_bound(MDP, pi, pi_new, beta, eps_q) - 1e-12)
    decreased |= bool(np.any(gain < 0))
    pi = pi_new
  assert decreased  # with this much noise monotonicity fails, but never beyond the slack of Thm 2


def test_c10_monte_carlo_iterative_ppo() -> None:
  key = jax.random.key(0, impl="rbg")
  run = ppo.run_iterative_ppo(MDP, UNIFORM, 0.05, 8, key=key, num_rollouts=400, horizon=40)
  assert np.all(run.q_errors < 0.2) and np.all(run.q_errors > 0)
  for i in range(8):
    gain = run.values[i + 1] - run.values[i]
    bound = _thm2_lower_bound(MDP, run.policies[i], run.policies[i + 1], 0.05, float(run.q_errors[i]))
    assert np.all(gain >= bound - 1e-12)
  assert np.max(_optimal_values(MDP) - run.values[-1]) < 0.02


def _sequence_probabilities(policy: tuple, responses: list, vocab: int) -> np.ndarray:
  """Pr[response] = prod_h policy[h](r_h | prefix r_{<h}); prefixes are indexed lexicographically. -> [1, N]."""
  probs = []
  for r in responses:
    prefix_index = [sum(tok * vocab ** (h - 1 - j) for j, tok in enumerate(r[:h])) for h in range(len(r))]
    probs.append(np.prod([policy[h][0, prefix_index[h], r[h]] for h in range(len(r))]))
  return np.array([probs])


def test_c11_token_level_optimum_equals_response_level_step() -> None:
  """Responses of k = 3 tokens over a vocabulary of 3, terminal reward Q(s, a): the token-level KL-regularised
  optimum (per-token KL summed along the response, soft backward induction on the prefix tree) induces exactly the
  response distribution pi(a|s) exp(Q(s,a)/beta) / Z, enumerated over all 27 responses."""
  rng = np.random.default_rng(3)
  vocab, length, beta = 3, 3, 0.4
  token_policy = tuple(rng.dirichlet(np.ones(vocab), size=(1, vocab**h)) for h in range(length))
  responses = mdp_lib.tree_states(vocab, length)
  q_response = rng.normal(size=(1, len(responses)))
  tree = mdp_lib.tree_mdp(token_policy, np.full((1, 27, 27), 0.5))
  token_opt, v = nash.soft_optimal(tree, q_response, beta)
  pi_response = _sequence_probabilities(token_policy, responses, vocab)
  induced = _sequence_probabilities(token_opt, responses, vocab)
  step = ppo.kl_improvement_step(pi_response, q_response, beta)
  np.testing.assert_allclose(induced, step, atol=1e-14)
  closed = pi_response * np.exp(q_response / beta)
  np.testing.assert_allclose(induced, closed / closed.sum(), atol=1e-14)
  assert v[0][0, 0] == pytest.approx(beta * np.log(closed.sum()), abs=1e-13)
