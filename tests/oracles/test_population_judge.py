"""The intransitive rater panel (oracles/population.py): a Condorcet cycle of concrete conversations, exact
antisymmetry, the aggregation by hand, and that no Bradley-Terry model reaches the panel's accuracy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mtpo_jax.envs import registry
from mtpo_jax.envs.education import scripted_teacher, strategy_game
from mtpo_jax.oracles.population import DEFAULT_PANEL, PopulationJudge, Rater, aggregate_preference
from mtpo_jax.oracles.rubric import RubricJudge

CYCLE = ("canonical:discover", "canonical:interactive", "canonical:lecture")  # each beats the next, the last the first
STRATEGIES = scripted_teacher.canonical_names()


@pytest.fixture(scope="module")
def contexts():
  return registry.contexts("education", 40, 0, "test")


@pytest.fixture(scope="module")
def played(contexts):
  return {n: scripted_teacher.play(n, contexts, max_agent_turns=3) for n in STRATEGIES}


def _hand_preference(a, b, raters=DEFAULT_PANEL) -> float:
  """The module docstring's formula written out with math.exp, one rater at a time."""
  rubric = RubricJudge()
  total = 0.0
  for r in raters:
    s = []
    for conv in (a, b):
      breakdown, lessons = rubric.read(conv)
      taste = sum(credit * r.taste.get(style, 0.0) for style, credit in lessons) / len(lessons)
      s.append(sum(r.emphasis.get(k, 1.0) * v for k, v in breakdown.items()) + r.taste_weight * taste)
    total += 1.0 / (1.0 + math.exp(-(s[0] - s[1]) / r.temperature))
  return total / len(raters)


def test_three_conversations_form_a_condorcet_cycle(contexts, played):
  judge = PopulationJudge()
  found = []
  for i in range(len(contexts)):
    a, b, c = (played[n][i] for n in CYCLE)
    p = [float(judge.preference([x], [y])[0]) for x, y in ((a, b), (b, c), (c, a))]
    if min(p) >= 0.6:
      found.append((i, p))
      # the same numbers by hand, rater by rater
      for (x, y), q in zip(((a, b), (b, c), (c, a)), p):
        assert q == pytest.approx(_hand_preference(x, y), abs=1e-12)
  assert found, "no context gives discover > interactive > lecture > discover with every P >= 0.6"
  i, p = found[0]
  print(f"context {i}: P(discover > interactive) = {p[0]:.3f}, P(interactive > lecture) = {p[1]:.3f}, "
        f"P(lecture > discover) = {p[2]:.3f}; {len(found)} of {len(contexts)} contexts cycle")
  # The rubric alone orders the same three conversations transitively (it is a score).
  rubric = RubricJudge()
  a, b, c = (played[n][i] for n in CYCLE)
  q = [float(rubric.preference([x], [y])[0]) for x, y in ((a, b), (b, c), (c, a))]
  assert min(q) < 0.5


@pytest.mark.parametrize("aggregate", ["mean", "majority"])
def test_exactly_antisymmetric(played, aggregate):
  judge = PopulationJudge(aggregate=aggregate)
  for x, y in itertools.combinations(STRATEGIES, 2):
    p, q = judge.preference(played[x], played[y]), judge.preference(played[y], played[x])
    assert np.all(p + q == 1.0)
    assert np.all((p >= 0) & (p <= 1))
  assert np.all(judge.preference(played[STRATEGIES[0]], played[STRATEGIES[0]]) == 0.5)


def test_aggregation_by_hand():
  s_a, s_b, t = np.array([[2.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]), np.ones(3)
  sig = lambda x: 1 / (1 + math.exp(-x))
  assert aggregate_preference(s_a, s_b, t)[0] == pytest.approx((sig(2) + sig(-1) + 0.5) / 3, abs=1e-15)
  assert aggregate_preference(s_a, s_b, t, "majority")[0] == 0.5  # one for, one against, one tie
  assert aggregate_preference(s_a, s_b, np.array([0.5, 1.0, 1.0]))[0] == pytest.approx(
      (sig(4) + sig(-1) + 0.5) / 3, abs=1e-15)
  assert aggregate_preference(np.array([[1.0, 1.0, -1.0]]), np.zeros((1, 3)), t, "majority")[0] == \
      pytest.approx(2 / 3)


def test_one_neutral_rater_is_the_rubric(played):
  """A panel of one rater with no emphasis and no taste is RubricJudge: sigmoid of the score difference."""
  panel = PopulationJudge([Rater("neutral", temperature=0.7)])
  rubric = RubricJudge(temperature=0.7)
  for x, y in itertools.combinations(STRATEGIES, 2):
    np.testing.assert_allclose(panel.preference(played[x], played[y]), rubric.preference(played[x], played[y]),
                               atol=1e-12)


def test_best_order_accuracy_by_hand():
  """A 3-cycle at 0.8: the judge is right 0.8 of the time on every pair; any order gets two pairs right and one
  wrong, (0.8 + 0.8 + 0.2) / 3. A transitive matrix: the order reaches the judge's own accuracy."""
  cyc = np.array([[0.5, 0.8, 0.2], [0.2, 0.5, 0.8], [0.8, 0.2, 0.5]])
  assert strategy_game.own_accuracy(cyc) == pytest.approx(0.8)
  assert strategy_game.best_order_accuracy(cyc) == pytest.approx(0.6)
  chain = np.array([[0.5, 0.3, 0.1], [0.7, 0.5, 0.4], [0.9, 0.6, 0.5]])  # 2 > 1 > 0
  assert strategy_game.best_order_accuracy(chain) == pytest.approx((0.7 + 0.9 + 0.6) / 3)


def _tournament_accuracies(judge, played, contexts) -> tuple[float, float]:
  """(the judge's own accuracy on its labels, the best BT accuracy) over the tournaments of the six strategies'
  conversations on each context (a BT model may give every conversation its own reward)."""
  own, bt = [], []
  for i in range(len(contexts)):
    p = strategy_game.pairwise_matrix(judge, [[played[n][i]] for n in STRATEGIES])
    own.append(strategy_game.own_accuracy(p))
    bt.append(strategy_game.best_order_accuracy(p))
  return float(np.mean(own)), float(np.mean(bt))


def _strategy_accuracies(judge, played) -> tuple[float, float]:
  """The same at the policy level: p = the strategies' matrix of mean preferences (a reward per strategy)."""
  p = strategy_game.pairwise_matrix(judge, [played[n] for n in STRATEGIES])
  return strategy_game.own_accuracy(p), strategy_game.best_order_accuracy(p)


def test_no_bradley_terry_model_reaches_the_panel(played, contexts):
  """Labels on the pairs among six generated conversations per context (conversation level: a BT model may give
  every conversation its own reward) and among the six strategies (policy level: a reward per strategy)."""
  own, bt = _tournament_accuracies(PopulationJudge(), played, contexts)
  own_s, bt_s = _strategy_accuracies(PopulationJudge(), played)
  print(f"panel labels, conversation level: the panel's own accuracy {own:.4f}, the best Bradley-Terry model's "
        f"{bt:.4f}; policy level: {own_s:.4f} and {bt_s:.4f}")
  assert bt < own - 0.003
  assert bt_s < own_s - 0.005
  # For the transitive rubric the score order reaches the judge's own accuracy: the gaps above are the panel's.
  own_r, bt_r = _tournament_accuracies(RubricJudge(), played, contexts)
  assert bt_r == pytest.approx(own_r, abs=1e-12)
  own_rs, bt_rs = _strategy_accuracies(RubricJudge(), played)
  assert bt_rs == pytest.approx(own_rs, abs=1e-12)


def test_bad_raters_are_named():
  with pytest.raises(ValueError, match="rater 'x': unknown criteria \\['clarty'\\]"):
    Rater("x", emphasis={"clarty": 2.0})
  with pytest.raises(ValueError, match="unknown teaching styles \\['lectures'\\]"):
    Rater("x", taste={"lectures": 1.0})
  with pytest.raises(ValueError, match="aggregate"):
    PopulationJudge(aggregate="median")
