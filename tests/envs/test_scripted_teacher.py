"""Scripted teachers as policies: names, the horizon, determinism, and that they follow the generator's script."""

import pytest

from mtpo_jax.envs.education import attributes, cues, scripted_teacher
from mtpo_jax.envs import registry


def test_names_and_bad_names():
  names = scripted_teacher.all_names()
  assert len(names) == len(attributes.TEACHER_PREFERENCES) * len(attributes.TEACHER_REACTIONS) == 20
  assert scripted_teacher.parse_name("scripted:lecture:might_adapt") == ("lecture", "might_adapt")
  for bad in ("lecture:might_adapt", "scripted:lecture", "scripted:chalk:might_adapt", "scripted:lecture:calm"):
    with pytest.raises(ValueError, match="scripted:<preference>:<reaction>"):
      scripted_teacher.parse_name(bad)


def test_plays_to_the_horizon_deterministically():
  ctx = registry.contexts("education", 12, 3, "test")
  a = scripted_teacher.play("scripted:hands_on:might_adapt", ctx, max_agent_turns=3)
  b = scripted_teacher.play("scripted:hands_on:might_adapt", ctx, max_agent_turns=3)
  assert [c.turns for c in a] == [c.turns for c in b]
  for c in a:
    assert c.done and 1 <= c.num_agent_turns <= 3
    assert [t.is_agent for t in c.turns][:2] == [True, False]  # the teacher opens, the student replies
    assert c.context.visible["topic"] in c.turns[0].text  # the script's opener names the topic


def test_teaches_in_its_own_style():
  """A might_insist lecture teacher (it asks about preferences in 3% of plans) teaches lecture-style turns."""
  ctx = registry.contexts("education", 16, 5, "test")
  convs = scripted_teacher.play("scripted:lecture:might_insist", ctx, max_agent_turns=3)
  styles = [cues.analyze_turn(t.text, c.context.visible["topic"]).style
            for c in convs for t in c.turns if t.is_agent]
  assert styles.count("lecture") >= 0.6 * len(styles)
