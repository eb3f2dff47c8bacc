"""The intransitive experiment's tabular twin (tabular/instances.strategy_game, docs/intransitive.md): the panel's
policy-level matrix over the canonical teaching strategies as a two-turn game. MTPO finds its Nash equilibrium;
multi-turn RLHF on a Bradley-Terry reward fitted to mu's data converges to an exploitable policy."""

from __future__ import annotations

import numpy as np
import pytest

from mtpo_jax.envs import registry
from mtpo_jax.envs.education import strategy_game
from mtpo_jax.oracles.population import PopulationJudge
from mtpo_jax.tabular import algorithms, baselines, instances, nash, values
from mtpo_jax.tabular import mdp as mdp_lib

from . import reference as ref

ALPHA = 0.01  # RLHF-m's alpha in gin/runs/rlhf_multi.gin
NAMES = [n.split(":", 1)[1] for n in strategy_game.CANONICAL]


@pytest.fixture(scope="module")
def twin():
  contexts = registry.contexts("education", 48, 0, "test")
  pref = strategy_game.strategy_matrix(PopulationJudge(), contexts, max_agent_turns=3)
  mu_ask, mu_styles = strategy_game.data_policy_rates(num_records=400)
  return instances.strategy_game(pref, mu_ask, mu_styles), pref, mu_ask, mu_styles


def test_the_game_is_the_strategies(twin):
  """mu's final-state distribution by hand: ask then adapt w.p. mu_ask, else teach style k w.p. mu_styles[k]."""
  game, pref, mu_ask, mu_styles = twin
  np.testing.assert_allclose(ref.final_distribution(game, game.mu)[0], [mu_ask, *((1 - mu_ask) * mu_styles)],
                             atol=1e-15)
  # the panel's policy-level cycle: discover > interactive > lecture > discover
  d, i, lec = (NAMES.index(n) for n in ("discover", "interactive", "lecture"))
  assert pref[d, i] > 0.55 and pref[i, lec] > 0.55 and pref[lec, d] > 0.55
  assert np.allclose(pref + pref.T, 1.0)


def test_mtpo_reaches_the_nash_equilibrium(twin):
  game = twin[0]
  mtpo = mdp_lib.index_policy(algorithms.run_mtpo(game, ALPHA, 10000).policies, -1)
  assert float(nash.exploitability(game, mtpo, ALPHA)) < 1e-9
  # the Newton solver (no MTPO inside) finds the same equilibrium
  star = nash.solve_equilibrium(game, ALPHA)
  assert float(nash.exploitability(game, star, ALPHA)) < 1e-12
  np.testing.assert_allclose(ref.final_distribution(game, mtpo), ref.final_distribution(game, star), atol=1e-4)
  # a mixed equilibrium: the cycle keeps three strategies in play
  final = ref.final_distribution(game, star)[0]
  assert sum(final > 0.1) >= 3


def test_rlhf_is_exploitable_and_the_best_response_wins(twin):
  game, pref = twin[0], twin[1]
  reward = baselines.final_state_reward_model(game, game.mu)
  rlhf = mdp_lib.index_policy(algorithms.run_rlhf(game, reward, ALPHA, 10000).policies, -1)
  # RLHF converged, to the soft optimum of its fitted reward: the gap below is the reward model's
  soft = nash.soft_optimal(game, reward, ALPHA)[0]
  assert float(values.trajectory_kl(game, soft, rlhf)) < 1e-10
  assert float(nash.exploitability(game, rlhf, ALPHA)) > 0.05
  # the best pure strategy against RLHF's policy, by hand from its final distribution: wins by >= 0.05
  final = ref.final_distribution(game, rlhf)[0]
  against = pref @ final
  best = int(np.argmax(against))
  assert against[best] >= 0.55, (NAMES[best], against[best])
  assert NAMES[best] == "lecture"  # the cycle's answer to the reward's favourite, discover
  assert NAMES[int(np.argmax(np.asarray(reward)[0]))] == "discover"
  # head to head, the regularised preference favours the equilibrium (digest C6)
  mtpo = mdp_lib.index_policy(algorithms.run_mtpo(game, ALPHA, 10000).policies, -1)
  assert ref.regularized_preference(game, mtpo, rlhf, ALPHA) >= 0.5


def test_twin_prediction_report(twin):
  _, pref, mu_ask, mu_styles = twin
  pred = strategy_game.twin_prediction(pref, mu_ask, mu_styles, ALPHA)
  assert pred["policies"]["MTPO"]["exploitability"] < 1e-9
  assert pred["policies"]["RLHF-m"]["exploitability"] > 0.05
  assert pred["policies"]["MTPO-tau"]["exploitability"] < 1e-3
  table = strategy_game.twin_table(pred, NAMES)
  assert "| RLHF-m |" in table and "lecture (0." in table


def test_a_reference_that_never_asks_keeps_the_twin_to_the_styles(twin):
  """mu_ask = 0 (the trained tiny SFT policy never asks first): asking is unavailable to every policy, and the
  best response is sought among the styles; the styles alone still cycle (interactive > lecture > hands-on >
  interactive), so RLHF stays exploitable."""
  _, pref, _, mu_styles = twin
  pred = strategy_game.twin_prediction(pref, 0.0, mu_styles, ALPHA)
  for name, p in pred["policies"].items():
    assert p["final"][0] == 0.0, name
    assert NAMES[p["best_response"]] != "discover", name
  i, lec, h = (NAMES.index(n) for n in ("interactive", "lecture", "hands_on"))
  assert pref[i, lec] > 0.5 and pref[lec, h] > 0.5 and pref[h, i] > 0.5
  assert pred["policies"]["MTPO"]["exploitability"] < 1e-9
  assert pred["policies"]["RLHF-m"]["exploitability"] > 0.01
