"""Independent references for the tabular tests: brute-force enumeration of whole trajectories, in plain numpy.

Nothing here calls `mtpo_jax.tabular` solvers; it only reads the instance arrays. Trajectory probabilities are
products along the path, so these are definitions, not the recursions under test.
"""

from __future__ import annotations

import itertools

import numpy as np

from mtpo_jax.tabular.mdp import LayeredMDP, random_mdp

ALPHA = 0.5
# Shared instances (same shapes across test files so jit caches are reused).
BASE = random_mdp(0, (1, 3, 4), num_actions=3, num_contexts=2)
SPARSE = random_mdp(3, (1, 3, 4, 5), num_actions=3, num_contexts=2, mu_sparsity=0.3)


def trajectories(mdp: LayeredMDP, pi: tuple) -> list[tuple[int, tuple[int, ...], tuple[int, ...], float]]:
  """All (context, states x_1..x_{H+1}, actions y_1..y_H, Pr[traj | c]) with positive probability."""
  out = []
  sizes = mdp.layer_sizes
  for c in range(mdp.num_contexts):
    for states in itertools.product(*(range(n) for n in sizes)):
      for actions in itertools.product(range(mdp.num_actions), repeat=mdp.horizon):
        prob = mdp.init[c, states[0]]
        for h in range(mdp.horizon):
          x, y, x_next = states[h], actions[h], states[h + 1]
          prob *= pi[h][c, x, y] * mdp.trans[h][c, x, y, x_next]
        if prob > 0:
          out.append((c, states, actions, prob))
  return out


def trajectory_kl(mdp: LayeredMDP, pi: tuple, pi_ref: tuple) -> float:
  """KL between the two trajectory distributions, sum_traj p log(p/q), averaged over contexts by rho."""
  total = 0.0
  for c, states, actions, p in trajectories(mdp, pi):
    q = mdp.init[c, states[0]]
    for h in range(mdp.horizon):
      q *= pi_ref[h][c, states[h], actions[h]] * mdp.trans[h][c, states[h], actions[h], states[h + 1]]
    total += mdp.rho[c] * p * np.log(p / q)
  return total


def final_distribution(mdp: LayeredMDP, pi: tuple) -> np.ndarray:
  """Pr[x_{H+1} = x | c] by summing trajectory probabilities. -> [C, S_{H+1}]."""
  d = np.zeros((mdp.num_contexts, mdp.layer_sizes[-1]))
  for c, states, _, p in trajectories(mdp, pi):
    d[c, states[-1]] += p
  return d


def win_probability(mdp: LayeredMDP, pi: tuple, pi_opp: tuple) -> float:
  """P(pi succ pi') = E_c sum_{x, x'} d(x) d'(x') P[c, x, x'] from enumerated final states."""
  d, d_opp = final_distribution(mdp, pi), final_distribution(mdp, pi_opp)
  return float(np.einsum("c,cx,cxy,cy->", mdp.rho, d, mdp.pref, d_opp))


def regularized_preference(mdp: LayeredMDP, pi: tuple, pi_opp: tuple, alpha: float) -> float:
  """P_alpha(pi succ pi') of digest A1 from brute-force pieces."""
  return (
    win_probability(mdp, pi, pi_opp)
    - alpha * trajectory_kl(mdp, pi, mdp.mu)
    + alpha * trajectory_kl(mdp, pi_opp, mdp.mu)
  )


def random_policy(mdp: LayeredMDP, rng: np.random.Generator, concentration: float = 1.0) -> tuple:
  """A random policy with the same support as mu."""
  out = []
  for m in mdp.mu:
    p = rng.dirichlet(np.full(m.shape[-1], concentration), size=m.shape[:-1]) * (m > 0)
    out.append(p / p.sum(-1, keepdims=True))
  return tuple(out)


def loglog_slope(ts: np.ndarray, ys: np.ndarray) -> float:
  """Least-squares slope of log y against log t."""
  return float(np.polyfit(np.log(ts), np.log(ys), 1)[0])
