"""Synthetic Education Dialogue data: determinism, released format, attribute lists, conversation shape."""

import collections
import json
import os
import random

import pytest

from mtpo_jax.envs.education import attributes, cues, generator, schema, teacher, topics
from mtpo_jax.types import END_OF_CONVERSATION

N = 400


@pytest.fixture(scope="module")
def records():
  return generator.generate(N, seed=11)


def test_same_seed_same_json_and_other_seed_differs(records):
  again = generator.generate(N, seed=11)
  assert json.dumps(records, sort_keys=True) == json.dumps(again, sort_keys=True)
  other = generator.generate(N, seed=12)
  assert sum(a != b for a, b in zip(records, other)) > 0.9 * N
  # Record i depends only on (seed, split, i): a slice regenerates alone; splits are different streams.
  assert generator.generate(5, seed=11, start=100) == records[100:105]
  assert generator.generate(20, seed=11, split="eval") != records[:20]


def test_every_record_passes_validation(records):
  problems = [p for i, r in enumerate(records) for p in schema.record_problems(r, "gen", i)]
  assert problems == []


def test_background_keys_are_the_released_misspellings(records):
  for r in records:
    assert list(r["background_info"]) == ["topic", "student_prefrences", "teacher_prefrences", "student_reactions",
                                          "teacher_reactions"]
    assert set(r) == {"background_info", "conversation", "ground_truth"}


def test_shape_roles_alternate_teacher_first_and_end_marker_last(records):
  lengths = collections.Counter()
  for r in records:
    turns = r["conversation"]
    lengths[len(turns)] += 1
    assert generator.TURN_RANGE[0] <= len(turns) <= generator.TURN_RANGE[1]
    roles = [t["role"] for t in turns]
    assert roles == [("Teacher", "Student")[i % 2] for i in range(len(turns))]
    assert turns[-1]["text"].endswith(END_OF_CONVERSATION)
    assert all(END_OF_CONVERSATION not in t["text"] for t in turns[:-1])
    assert all(t["text"].strip() for t in turns)
  # Mostly the planned 10-15 turns, with every length represented.
  assert set(lengths) == set(range(10, 16))


def test_attribute_values_come_from_the_lists(records):
  seen = collections.defaultdict(set)
  lists = {"topic": set(topics.TOPIC_NAMES), "student_prefrences": set(attributes.STUDENT_PREFERENCES.values()),
           "teacher_prefrences": set(attributes.TEACHER_PREFERENCES.values()),
           "student_reactions": set(attributes.STUDENT_REACTIONS.values()),
           "teacher_reactions": set(attributes.TEACHER_REACTIONS.values())}
  for r in records:
    for key, value in r["background_info"].items():
      assert value in lists[key], (key, value)
      seen[key].add(value)
  for key in lists:
    if key != "topic":
      assert seen[key] == lists[key], key  # every value is drawn
  assert len(seen["topic"]) > 60


def test_attribute_lists_follow_the_paper():
  assert len(attributes.STUDENT_PREFERENCES) == 4 and len(attributes.STUDENT_REACTIONS) == 6
  assert len(attributes.TEACHER_PREFERENCES) == 4 and len(attributes.TEACHER_REACTIONS) == 5
  assert len(topics.TOPICS) == 80
  per_category = collections.Counter(t.category for t in topics.TOPICS.values())
  assert set(per_category) == set(topics.CATEGORIES) and min(per_category.values()) >= 8
  assert all(len(t.facts) == 4 and len(set(t.facts)) == 4 for t in topics.TOPICS.values())
  # Our sentences and free wordings map back to their keys.
  for key, sentence in attributes.STUDENT_PREFERENCES.items():
    assert attributes.student_style_of(sentence) == key
  for key, sentence in attributes.STUDENT_REACTIONS.items():
    assert attributes.student_reaction_of(sentence) == key
  for key, sentence in attributes.TEACHER_REACTIONS.items():
    assert attributes.teacher_reaction_of(sentence) == key
  assert attributes.student_style_of("Prefers storytelling and games") == "creative"
  assert attributes.student_style_of("Experiential, real-world learning") == "hands_on"


def test_text_is_topic_specific_and_varied(records):
  for r in records[:100]:
    topic = r["background_info"]["topic"]
    teacher_text = " ".join(t["text"] for t in r["conversation"] if t["role"] == "Teacher")
    facts = topics.TOPICS[topic].facts
    assert any(f in teacher_text or topics.sentence(f)[:-1] in teacher_text for f in facts)
  texts = [t["text"] for r in records for t in r["conversation"]]
  assert len(set(texts)) > 0.6 * len(texts)


def test_every_teaching_template_is_read_as_its_own_style():
  rng = random.Random(0)
  for style in attributes.STYLES:
    for name in topics.TOPIC_NAMES:
      for _ in range(5):
        text = teacher.teach_text(style, name, rng)
        c = cues.analyze_turn(text, name)
        assert c.style == style and c.content >= 2 and not cues.is_degenerate(c), text


def test_ground_truth_tracks_adaptation(records):
  truths = [r["ground_truth"] for r in records]
  adapted = [t["outcome"] for t in truths if t["teacher_adapted"]]
  stubborn = [t["outcome"] for t in truths if not t["teacher_adapted"] and t["matched_turns"] == 0]
  assert 0.08 * N < len(adapted) < 0.5 * N  # a minority of teachers adapt ("a small chance ... succeeds")
  assert sum(adapted) / len(adapted) > sum(stubborn) / len(stubborn) + 0.25
  assert all(t["ended_by"] in ("teacher", "student") for t in truths)


def test_write_dataset_file_layout_and_sizes(tmp_path):
  paths = generator.write_dataset(str(tmp_path), seed=3, num_train=23, num_train_files=5, num_eval=7)
  names = [os.path.basename(p) for p in paths]
  assert names == [f"conversations_train{i}.json" for i in range(1, 6)] + ["conversations_eval.json"]
  records, report = schema.load_released(paths)
  assert report.loaded == 30 and report.problems == []
  sizes = [len(json.load(open(p))) for p in paths]
  assert sum(sizes[:5]) == 23 and sizes[5] == 7 and max(sizes[:5]) - min(sizes[:5]) <= 1
  assert records[:23] == generator.generate(23, seed=3, split="train")


def test_default_sizes_match_the_released_split():
  assert (generator.NUM_TRAIN, generator.NUM_TRAIN_FILES, generator.NUM_EVAL) == (40_000, 5, 7_234)
