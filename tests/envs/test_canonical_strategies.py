"""Canonical teaching strategies (envs/education/scripted_teacher.py) and the readings of the intransitive
experiment (envs/education/strategy_game.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mtpo_jax.envs import registry
from mtpo_jax.envs.education import attributes, cues, scripted_teacher, strategy_game
from mtpo_jax.envs.education.env import profile_of
from mtpo_jax.evaluation.evaluate import ground_truth_judge


@pytest.fixture(scope="module")
def contexts():
  return registry.contexts("education", 24, 0, "test")


def test_discover_asks_then_teaches_the_answered_style(contexts):
  for conv in scripted_teacher.play("canonical:discover", contexts, max_agent_turns=3):
    topic, preference = conv.context.visible["topic"], profile_of(conv.context).preference
    teacher = [cues.analyze_turn(t.text, topic) for t in conv.turns if t.is_agent]
    assert len(teacher) == 3 and teacher[0].asks_preference
    assert not any(c.asks_preference for c in teacher[1:])
    assert [c.style for c in teacher[1:]] == [preference, preference], conv.context.context_id


@pytest.mark.parametrize("style", attributes.STYLES)
def test_style_strategies_teach_one_style_on_topic(contexts, style):
  for conv in scripted_teacher.play(f"canonical:{style}", contexts, max_agent_turns=3):
    topic = conv.context.visible["topic"]
    teacher = [cues.analyze_turn(t.text, topic) for t in conv.turns if t.is_agent]
    assert all(c.style == style and c.content >= 2 and not c.asks_preference for c in teacher)
    assert all(c.invites for c in teacher) == (style == "interactive")


def test_bad_strategy_names_are_named():
  with pytest.raises(ValueError, match="'canonical:lectures' is not a canonical strategy.*'discover'"):
    scripted_teacher.play("canonical:lectures", [], max_agent_turns=3)
  assert scripted_teacher.is_scripted("canonical:discover") and scripted_teacher.is_scripted("scripted:a:b")
  assert not scripted_teacher.is_scripted("runs/mtpo")


def test_ground_truth_judge_choice():
  assert type(ground_truth_judge("education", "population")).__name__ == "PopulationJudge"
  assert type(ground_truth_judge("education")).__name__ == "RubricJudge"
  with pytest.raises(ValueError, match="--judge population exists for education only"):
    ground_truth_judge("negotiation", "population")
  with pytest.raises(ValueError, match="unknown judge 'panel'"):
    ground_truth_judge("education", "panel")


def test_exploitability_proxy_by_hand():
  names = ["A", "B", "C"]
  m = np.array([[0.5, 0.7, 0.4], [0.3, 0.5, 0.55], [0.6, 0.45, 0.5]])
  proxy = strategy_game.exploitability_proxy(names, m, ["A", "B", "C"])
  assert proxy == {"A": ("C", 0.6), "B": ("A", 0.7), "C": ("B", 0.55)}


def test_data_policy_rates_match_a_direct_count():
  """mu_ask by a direct reading of the records: the teacher asks within its first 3 turns."""
  from mtpo_jax.envs.education import generator
  from mtpo_jax.envs.education.convert import record_to_conversation
  records = generator.generate(60, 0, "train")
  asks = 0
  for i, r in enumerate(records):
    conv = record_to_conversation(r, f"x{i}")
    first = [t.text for t in conv.turns if t.is_agent][:3]
    asks += any(cues.analyze_turn(t, conv.context.visible["topic"]).asks_preference for t in first)
  mu_ask, mu_styles = strategy_game.data_policy_rates(60)
  assert mu_ask == asks / 60
  assert mu_styles.shape == (len(attributes.STYLES),) and mu_styles.sum() == pytest.approx(1.0)
  assert 0 < mu_ask < 0.5


def test_strategy_profile_reads_the_strategies(contexts):
  discover = strategy_game.strategy_profile(scripted_teacher.play("canonical:discover", contexts, max_agent_turns=3))
  assert discover["asks_first"] == 1.0 and discover["asks"] == 1.0 and discover["topical_turns"] == 2.0
  prefs = [profile_of(c).preference for c in contexts]
  for style in attributes.STYLES:  # it teaches each student's answered style, twice
    assert discover["styles"][style] == pytest.approx(prefs.count(style) / len(prefs))
  lecture = strategy_game.strategy_profile(scripted_teacher.play("canonical:lecture", contexts, max_agent_turns=3))
  assert lecture["asks_first"] == 0.0 and lecture["topical_turns"] == 3.0 and lecture["styles"]["lecture"] == 1.0


def test_report_shows_profiles_and_the_twin():
  names = ["SFT", "MTPO", *(n.split(":", 1)[1] for n in strategy_game.CANONICAL)]
  m = np.full((len(names), len(names)), 0.5)
  cyc = {("discover", "interactive"): 0.6, ("interactive", "lecture"): 0.6, ("lecture", "discover"): 0.6}
  for (a, b), p in cyc.items():
    m[names.index(a), names.index(b)], m[names.index(b), names.index(a)] = p, 1 - p
  profile = {"asks_first": 0.25, "asks": 0.5, "topical_turns": 2.0,
             "styles": dict.fromkeys((*attributes.STYLES, "none"), 1 / 6)}
  text = strategy_game.report_markdown(names, m, m - 0.1, m + 0.1, ["SFT", "MTPO"], 0.2,
                                       np.full(5, 0.2), profiles={"MTPO": profile})
  assert "| MTPO | 0.25 | 0.50 | 2.00 |" in text
  assert "| RLHF-m | 1.00 | 0.00 | 0.00 |" not in text  # no trained RLHF-m row here
  assert "| RLHF-m |" in text and "Tabular twin" in text  # the twin's own RLHF-m row
