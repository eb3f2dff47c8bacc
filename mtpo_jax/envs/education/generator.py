"""Synthetic Education Dialogue data in the released JSON format (digest A9-A10), deterministic by seed.

The paper prompts Gemini Ultra with sampled attributes to write whole conversations; here a scripted teacher
(teacher.py) and a simulated student (student.py) play them out. A record is

    {"background_info": {"topic", "student_prefrences", "teacher_prefrences", "student_reactions",
                         "teacher_reactions"},          # keys misspelt as in the released data
     "conversation": [{"role": "Teacher" | "Student", "text": ...}, ...],
     "ground_truth": {...}}                              # our extra field; the released loader ignores it

The teacher speaks first; roles alternate. A conversation is planned to last 10-15 turns and ends with
`[end of conversation]`, said by the teacher (closing turn) or the student (goodbye after the teacher wraps up);
a teacher that gives up or a student that walks out can end it earlier, but never before turn 10 (TURN_RANGE).
Record i of a split depends only on (seed, split, i), so splits are disjoint streams and any slice can be
regenerated alone.
"""

from __future__ import annotations

import json
import os
import random
from typing import Sequence

from mtpo_jax.envs.education import attributes, cues, student, teacher, topics
from mtpo_jax.envs.education.schema import BACKGROUND_KEYS
from mtpo_jax.types import END_OF_CONVERSATION

ROLE_TEACHER, ROLE_STUDENT = "Teacher", "Student"
PLANNED_LENGTH = (10, 15)
TURN_RANGE = (10, 15)
# Released split sizes (digest A10): 40,000 train conversations in 5 files and 7,234 eval conversations.
NUM_TRAIN, NUM_TRAIN_FILES, NUM_EVAL = 40_000, 5, 7_234


def _play(rng: random.Random, topic: str, s_pref: str, s_react: str, t_pref: str, t_react: str):
  """Plays one conversation; returns (turns as (role, text), ground-truth dict)."""
  profile = student.profile_from_attributes(topic, s_pref, s_react)
  plan = teacher.make_plan(t_pref, t_react, rng)
  length = rng.randint(*PLANNED_LENGTH)
  state, ts = student.initial_state(profile), teacher.TeacherState()
  turns, earlier, intent, k = [], [], None, 0
  ended_by, reason = "teacher", "wrap_up"
  while True:
    k += 1
    pos = len(turns) + 1
    if pos >= length - 1:  # closing turn: the teacher ends (odd length) or lets the student say goodbye
      text, kind = teacher.closing_text(topic, end=pos == length, rng=rng), "close"
    else:
      text, ts, kind = teacher.teacher_turn(plan, ts, k, intent, profile.preference, topic, rng)
    turns.append((ROLE_TEACHER, text))
    if END_OF_CONVERSATION in text:
      reason = "gave_up" if kind == "give_up" else "wrap_up"
      break
    c = cues.analyze_turn(text, topic)
    state, intent = student.react(state, c, earlier, profile, rng)
    earlier.append(c)
    turns.append((ROLE_STUDENT, student.render(intent, state, profile, rng)))
    if intent in student.ENDING_INTENTS:
      ended_by, reason = "student", "walked_out" if intent == "walk_out" else "wrap_up"
      break
  truth = {
      "understanding": round(state.understanding, 4), "engagement": round(state.engagement, 4),
      "outcome": round(0.7 * state.understanding + 0.3 * state.engagement, 4),
      "teacher_adapted": ts.adapted, "teacher_asked_preference": ts.asked,
      "student_revealed_preference": state.revealed, "matched_turns": state.matched,
      "teaching_turns": state.teaching_turns, "ended_by": ended_by, "end_reason": reason,
  }
  return turns, truth


def generate_record(seed: int, split: str, index: int) -> dict:
  """Record `index` of `split`: attributes drawn uniformly from the lists, then one played conversation."""
  rng = random.Random(f"education:{seed}:{split}:{index}")
  topic = rng.choice(topics.TOPIC_NAMES)
  s_pref = attributes.STUDENT_PREFERENCES[rng.choice(tuple(attributes.STUDENT_PREFERENCES))]
  t_pref = attributes.TEACHER_PREFERENCES[rng.choice(tuple(attributes.TEACHER_PREFERENCES))]
  s_react = attributes.STUDENT_REACTIONS[rng.choice(tuple(attributes.STUDENT_REACTIONS))]
  t_react = attributes.TEACHER_REACTIONS[rng.choice(tuple(attributes.TEACHER_REACTIONS))]
  turns, truth = _play(rng, topic, s_pref, s_react, t_pref, t_react)
  background = dict(zip(BACKGROUND_KEYS, (topic, s_pref, t_pref, s_react, t_react)))
  return {"background_info": background, "conversation": [{"role": r, "text": t} for r, t in turns],
          "ground_truth": truth}


def replay(record: dict, seed: str | int, vary_teacher: bool = True) -> dict:
  """Another conversation on the same student and topic: a fresh play, by default with freshly drawn teacher
  attributes (a different teacher policy), so a record and its replay form a preference pair on one context."""
  rng = random.Random(f"education-replay:{seed}")
  bg = dict(record["background_info"])
  if vary_teacher:
    bg["teacher_prefrences"] = attributes.TEACHER_PREFERENCES[rng.choice(tuple(attributes.TEACHER_PREFERENCES))]
    bg["teacher_reactions"] = attributes.TEACHER_REACTIONS[rng.choice(tuple(attributes.TEACHER_REACTIONS))]
  turns, truth = _play(rng, bg["topic"], bg["student_prefrences"], bg["student_reactions"], bg["teacher_prefrences"],
                       bg["teacher_reactions"])
  return {"background_info": bg, "conversation": [{"role": r, "text": t} for r, t in turns], "ground_truth": truth}


def generate(num: int, seed: int = 0, split: str = "train", start: int = 0) -> list[dict]:
  """Records start .. start+num-1 of a split."""
  return [generate_record(seed, split, i) for i in range(start, start + num)]


def split_file_names(num_train_files: int = NUM_TRAIN_FILES) -> tuple[list[str], str]:
  """(train file names, eval file name) of a written dataset."""
  return [f"conversations_train{i + 1}.json" for i in range(num_train_files)], "conversations_eval.json"


def write_dataset(out_dir: str, seed: int = 0, num_train: int = NUM_TRAIN, num_train_files: int = NUM_TRAIN_FILES,
                  num_eval: int = NUM_EVAL) -> list[str]:
  """Writes the train split over `num_train_files` files and the eval split to one file; returns the paths."""
  os.makedirs(out_dir, exist_ok=True)
  train_names, eval_name = split_file_names(num_train_files)
  bounds = [round(i * num_train / num_train_files) for i in range(num_train_files + 1)]
  jobs = [(n, "train", bounds[i], bounds[i + 1] - bounds[i]) for i, n in enumerate(train_names)]
  jobs.append((eval_name, "eval", 0, num_eval))
  paths = []
  for name, split, start, num in jobs:
    path = os.path.join(out_dir, name)
    _write_json(path, generate(num, seed, split, start))
    paths.append(path)
  return paths


def _write_json(path: str, records: Sequence[dict]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(list(records), f, ensure_ascii=False)
  os.replace(tmp, path)
