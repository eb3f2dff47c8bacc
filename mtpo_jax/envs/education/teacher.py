"""The scripted teacher of the data generator: mostly teaches in its own style, sometimes finds out and adapts.

A plan is drawn per conversation from the teacher's reaction attribute (attributes.py):
  - asks how the student learns in its first or second turn: 45% of "might adapt" teachers, 3% of "might
    insist" ones, 7% of the others; a teacher that asked adapts with probability 0.95;
  - when the student reveals the preference unprompted, it adapts with probability 0.9 ("might adapt"), 0.35
    ("frustrated", "gives up"), 0.15 ("blames") or 0.05 ("might insist"; otherwise it says it insists);
  - after a negative reply: "might adapt" asks about the preference (60%, once), "frustrated" says so,
    "blames" blames the student, "gives up" ends the lesson after two bad replies (60%, from its 6th turn);
  - a teaching turn uses the current style (its own, or the student's once adapted) except 12% (8% once
    adapted) of turns that stray to another style.
The teacher sees the student's reply intent (it is a script); the student sees only the teacher's text.
"""

from __future__ import annotations

import random
import string
from typing import NamedTuple

from mtpo_jax.envs.education import attributes, student, topics
from mtpo_jax.envs.education import teacher_phrases as tp
from mtpo_jax.types import END_OF_CONVERSATION

ASK_PROBABILITY = {"might_adapt": 0.45, "might_insist": 0.03}
ASK_PROBABILITY_DEFAULT = 0.07
ADAPT_ON_REVEAL = {"might_adapt": 0.9, "frustrated": 0.35, "gives_up": 0.35, "blames": 0.15, "might_insist": 0.05}
ADAPT_AFTER_ASKING = 0.95
STRAY, STRAY_ADAPTED = 0.12, 0.08
GIVE_UP_MIN_TURN = 6


class TeacherPlan(NamedTuple):
  style: str
  reaction: str
  ask_turn: int | None  # teacher turn (1-based) that asks about the learning preference


class TeacherState(NamedTuple):
  adapted: bool = False
  asked: bool = False
  known_preference: str | None = None
  declined: bool = False  # learnt the preference and decided not to adapt
  trouble: int = 0


def make_plan(teacher_preference: str, teacher_reaction: str, rng: random.Random) -> TeacherPlan:
  style, reaction = attributes.teacher_style_of(teacher_preference), attributes.teacher_reaction_of(teacher_reaction)
  ask = rng.random() < ASK_PROBABILITY.get(reaction, ASK_PROBABILITY_DEFAULT)
  return TeacherPlan(style, reaction, rng.choice((1, 2)) if ask else None)


def _fields(template: str) -> frozenset[str]:
  fields = _FIELDS.get(template)
  if fields is None:
    fields = _FIELDS[template] = frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)
  return fields


_FIELDS: dict[str, frozenset[str]] = {}


def _fill(template: str, topic: str, rng: random.Random) -> str:
  """Fills a template's slots (only those it uses) with the topic's content."""
  fields, t = _fields(template), topics.lookup(topic)
  slots = {"topic": topic[0].lower() + topic[1:] if topic.startswith("The ") else topic}
  if "fact2" in fields or "Fact2" in fields:
    fact, fact2 = rng.sample(t.facts, 2)
    slots.update(fact2=fact2, Fact2=topics.sentence(fact2))
  else:
    fact = rng.choice(t.facts)
  slots.update(fact=fact, Fact=topics.sentence(fact))
  if "activity" in fields:
    slots["activity"] = rng.choice(topics.ACTIVITIES[t.category])
  if "character" in fields:
    slots["character"] = rng.choice(topics.CHARACTERS[t.category])
  return template.format(**slots)


def _tidy(text: str) -> str:
  return text.replace("..", ".")  # a topic ending in a full stop ("Martin Luther King Jr.") before one


def teach_text(style: str, topic: str, rng: random.Random) -> str:
  """One teaching turn in `style` about `topic` (a known topic)."""
  return _tidy(_fill(rng.choice(tp.TEACH[style]), topic, rng))


def _current_style(plan: TeacherPlan, ts: TeacherState, rng: random.Random) -> str:
  base = ts.known_preference if ts.adapted else plan.style
  if rng.random() < (STRAY_ADAPTED if ts.adapted else STRAY):
    return rng.choice([s for s in attributes.STYLES if s != base])
  return base


def closing_text(topic: str, end: bool, rng: random.Random) -> str:
  """A wrap-up turn; with `end` it says goodbye and carries the end marker."""
  text = _tidy(_fill(rng.choice(tp.WRAP), topic, rng))
  return f"{text} {rng.choice(tp.FAREWELL)} {END_OF_CONVERSATION}" if end else text


def _learn(plan: TeacherPlan, ts: TeacherState, last_intent: str | None, preference: str,
           rng: random.Random) -> TeacherState:
  """Update what the teacher knows from the student's last reply (and decide once whether to adapt)."""
  if last_intent in ("answer_preference", "reveal") and ts.known_preference is None:
    p = ADAPT_AFTER_ASKING if ts.asked else ADAPT_ON_REVEAL.get(plan.reaction, 0.2)
    adapt = rng.random() < p
    ts = ts._replace(known_preference=preference, declined=not adapt)
    return ts._replace(adapted=adapt and preference != plan.style)
  if last_intent in student.NEGATIVE_INTENTS:
    ts = ts._replace(trouble=ts.trouble + 1)
  return ts


def teacher_turn(plan: TeacherPlan, ts: TeacherState, k: int, last_intent: str | None, preference: str,
                 topic: str, rng: random.Random) -> tuple[str, TeacherState, str]:
  """(text, new state, kind) of teacher turn k (1-based) after the student's `last_intent`."""
  was_adapted = ts.adapted
  ts = _learn(plan, ts, last_intent, preference, rng)
  opener = _tidy(rng.choice(tp.OPENERS).format(topic=topic)) + " " if k == 1 else ""
  negative = last_intent in student.NEGATIVE_INTENTS
  unknown = ts.known_preference is None and not ts.asked
  if unknown and (k == plan.ask_turn or (plan.reaction == "might_adapt" and negative and rng.random() < 0.6)):
    return opener + rng.choice(tp.ASK_PREFERENCE), ts._replace(asked=True), "ask"
  if ts.adapted and not was_adapted:
    text = rng.choice(tp.ADAPT[ts.known_preference]) + " " + teach_text(ts.known_preference, topic, rng)
    return text, ts, "adapt"
  if (plan.reaction == "gives_up" and negative and ts.trouble >= 2 and k >= GIVE_UP_MIN_TURN and rng.random() < 0.6):
    return f"{rng.choice(tp.GIVE_UP)} {END_OF_CONVERSATION}", ts, "give_up"
  prefix, kind = "", "teach"
  if ts.declined and last_intent in ("answer_preference", "reveal") and plan.reaction == "might_insist":
    prefix, kind = rng.choice(tp.INSIST) + " ", "insist"
  elif negative and plan.reaction == "blames" and rng.random() < 0.7:
    prefix, kind = rng.choice(tp.BLAME) + " ", "blame"
  elif negative and plan.reaction == "frustrated" and rng.random() < 0.7:
    prefix, kind = rng.choice(tp.FRUSTRATED) + " ", "frustrated"
  elif last_intent == "question":
    prefix = rng.choice(tp.ON_QUESTION)
  elif last_intent == "understood":
    prefix = rng.choice(tp.ON_UNDERSTOOD)
  text = opener + prefix + teach_text(_current_style(plan, ts, rng), topic, rng)
  if kind == "teach" and rng.random() < 0.15:
    text += rng.choice(tp.INVITE)
  return text, ts, kind
