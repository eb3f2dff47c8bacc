"""The data generator's scripted teachers as policies: play them on held-out contexts like any trained policy.

A scripted teacher is named `scripted:<preference>:<reaction>` (keys of attributes.TEACHER_PREFERENCES and
TEACHER_REACTIONS, e.g. `scripted:lecture:might_adapt`). It plays the generator's teacher script (teacher.py) turn
by turn inside an `EducationEnv` over the scripted student, so it meets the same horizon (`max_agent_turns`) and
the same student replies as the trained policies, and it reads the student's reply intent from that student (the
script sees intents, as in the generator). It is the reference ceiling of the learning benchmark: what a teacher
that adapts on purpose scores under the ground-truth rubric.
"""

from __future__ import annotations

import random
from typing import Sequence

from mtpo_jax.envs.education import attributes, teacher
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent, profile_of
from mtpo_jax.types import Context, Conversation

PREFIX = "scripted:"


def all_names() -> list[str]:
  """Every scripted teacher, `scripted:<preference>:<reaction>`."""
  return [f"{PREFIX}{p}:{r}" for p in attributes.TEACHER_PREFERENCES for r in attributes.TEACHER_REACTIONS]


def parse_name(name: str) -> tuple[str, str]:
  """`scripted:<preference>:<reaction>` -> (preference, reaction); ValueError naming the valid keys."""
  parts = name.split(":")
  if len(parts) != 3 or parts[0] + ":" != PREFIX or parts[1] not in attributes.TEACHER_PREFERENCES \
      or parts[2] not in attributes.TEACHER_REACTIONS:
    raise ValueError(f"{name!r} is not a scripted teacher; expected scripted:<preference>:<reaction> with "
                     f"preference in {sorted(attributes.TEACHER_PREFERENCES)} and reaction in "
                     f"{sorted(attributes.TEACHER_REACTIONS)}")
  return parts[1], parts[2]


def play(name: str, contexts: Sequence[Context], *, max_agent_turns: int, seed: int = 0) -> list[Conversation]:
  """One conversation per context of the scripted teacher `name` against the scripted student (environment seed
  `seed`, the same student the RL trainers and the evaluation use by default)."""
  preference, reaction = parse_name(name)
  env = EducationEnv(ScriptedStudent(seed), max_agent_turns=max_agent_turns)
  student = env.student
  out = []
  for ctx in contexts:
    rng = random.Random(f"scripted-teacher:{seed}:{name}:{ctx.context_id}")
    plan = teacher.make_plan(attributes.TEACHER_PREFERENCES[preference], attributes.TEACHER_REACTIONS[reaction], rng)
    profile = profile_of(ctx)
    ts, intent = teacher.TeacherState(), None
    (conv,) = env.reset([ctx])
    k = 0
    while not conv.done:
      k += 1
      text, ts, _ = teacher.teacher_turn(plan, ts, k, intent, profile.preference, profile.topic, rng)
      (conv,), _ = env.step([conv], [text])
      if not conv.done:
        _, intent = student.state(conv)
    out.append(conv)
  return out
