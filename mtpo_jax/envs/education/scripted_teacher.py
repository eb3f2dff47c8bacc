"""The data generator's scripted teachers as policies: play them on held-out contexts like any trained policy.

A scripted teacher is named `scripted:<preference>:<reaction>` (keys of attributes.TEACHER_PREFERENCES and
TEACHER_REACTIONS, e.g. `scripted:lecture:might_adapt`). It plays the generator's teacher script (teacher.py) turn
by turn inside an `EducationEnv` over the scripted student, so it meets the same horizon (`max_agent_turns`) and
the same student replies as the trained policies, and it reads the student's reply intent from that student (the
script sees intents, as in the generator). It is the reference ceiling of the learning benchmark: what a teacher
that adapts on purpose scores under the ground-truth rubric.

Canonical strategies, `canonical:<strategy>` (CANONICAL), are deterministic plans without the generator's random
asking, straying and reactions: the pure strategies of the intransitive experiment's tabular twin
(docs/intransitive.md) and the challengers of its exploitability proxy.
  discover     turn 1 asks how the student learns; every later turn teaches in the answered style
  <style>      every turn teaches in that style (lecture, interactive, hands_on, creative, assessment);
               interactive lessons end with an invitation to ask or answer
"""

from __future__ import annotations

import random
from typing import Sequence

from mtpo_jax.envs.education import attributes, teacher
from mtpo_jax.envs.education import teacher_phrases as tp
from mtpo_jax.envs.education.env import EducationEnv, ScriptedStudent, profile_of
from mtpo_jax.types import Context, Conversation

PREFIX = "scripted:"
CANONICAL_PREFIX = "canonical:"
CANONICAL = ("discover",) + attributes.STYLES


def is_scripted(name: str) -> bool:
  """Does `name` name a scripted teacher or a canonical strategy (rather than a run directory)?"""
  return name.startswith(PREFIX) or name.startswith(CANONICAL_PREFIX)


def all_names() -> list[str]:
  """Every scripted teacher, `scripted:<preference>:<reaction>`."""
  return [f"{PREFIX}{p}:{r}" for p in attributes.TEACHER_PREFERENCES for r in attributes.TEACHER_REACTIONS]


def canonical_names() -> list[str]:
  """Every canonical strategy, `canonical:<strategy>`."""
  return [CANONICAL_PREFIX + c for c in CANONICAL]


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
  if name.startswith(CANONICAL_PREFIX):
    return play_canonical(name, contexts, max_agent_turns=max_agent_turns, seed=seed)
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


def check_name(name: str) -> None:
  """ValueError naming the valid names unless `name` is a scripted teacher or a canonical strategy."""
  (parse_canonical if name.startswith(CANONICAL_PREFIX) else parse_name)(name)


def parse_canonical(name: str) -> str:
  """`canonical:<strategy>` -> strategy; ValueError naming the valid ones."""
  strategy = name[len(CANONICAL_PREFIX):] if name.startswith(CANONICAL_PREFIX) else None
  if strategy not in CANONICAL:
    raise ValueError(f"{name!r} is not a canonical strategy; expected canonical:<strategy> with strategy in "
                     f"{list(CANONICAL)}")
  return strategy


def canonical_turn(strategy: str, k: int, known_preference: str | None, topic: str, rng: random.Random) -> str:
  """Teacher turn k (1-based) of a canonical strategy; `known_preference`: the student's answered style."""
  opener = teacher._tidy(rng.choice(tp.OPENERS).format(topic=topic)) + " " if k == 1 else ""
  if strategy == "discover":
    if k == 1:
      return opener + rng.choice(tp.ASK_PREFERENCE)
    style = known_preference or "interactive"  # a student who never answered gets a discussion
  else:
    style = strategy
  text = opener + teacher.teach_text(style, topic, rng)
  return text + rng.choice(tp.INVITE) if style == "interactive" else text


def play_canonical(name: str, contexts: Sequence[Context], *, max_agent_turns: int,
                   seed: int = 0) -> list[Conversation]:
  """One conversation per context of `canonical:<strategy>` against the scripted student (seed `seed`)."""
  strategy = parse_canonical(name)
  env = EducationEnv(ScriptedStudent(seed), max_agent_turns=max_agent_turns)
  out = []
  for ctx in contexts:
    rng = random.Random(f"canonical-teacher:{seed}:{strategy}:{ctx.context_id}")
    profile = profile_of(ctx)
    (conv,) = env.reset([ctx])
    k, known = 0, None
    while not conv.done:
      k += 1
      (conv,), _ = env.step([conv], [canonical_turn(strategy, k, known, profile.topic, rng)])
      if not conv.done and env.student.state(conv)[1] == "answer_preference":
        known = profile.preference
    out.append(conv)
  return out
