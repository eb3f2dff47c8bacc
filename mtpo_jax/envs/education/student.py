"""The simulated student: hidden state (understanding, engagement) driven by how each teacher turn is taught.

Pure functions shared by the data generator and the environment's ScriptedStudent (env.py), so the student in
the data and the student the policy talks to behave alike. The student reads teacher text through cues.py, so
it reacts to any free-form turn, not only the scripted teacher's templates.

Per teacher turn (`react`), in this order:
  1. ends with [end of conversation]                 -> "goodbye" (no state change)
  2. wraps up ("that's all for today") or gives up    -> "goodbye" (the reply carries the end marker)
  3. says nothing / nearly repeats an earlier turn / keyword-stuffed or overlong
                                                       -> "puzzled" / "repeat" / "nonsense", engagement -0.1
  4. hostile (blames, insults)                        -> engagement -0.15; "rude", "anxious", "disengaged" or "hurt"
  5. asks how the student likes to learn              -> reveals the preference, engagement +0.08
  6. teaches: m = match of the detected style with the preference (attributes.match_strength),
     c = min(1, topic words / 3); understanding += c * (0.06 + 0.18 m [+0.06 if "might adapt" and m < 1])
     * (0.5 + 0.5 engagement); engagement +0.12 on a match, +0.03 on a partial one, otherwise minus a
     reaction-dependent drop (rude 0.15, disengaged 0.2, frustrated/anxious 0.12, might tell 0.08, might adapt
     0.04); +0.03 more if the turn invites questions or praises. Matches give "understood" / "question" /
     "positive"; mismatches the reaction's reply ("might tell" reveals the preference, "might adapt" goes
     along, "rude" gets rude, "disengaged" answers in one word, ...).
  7. a rude or disengaged student whose engagement falls to 0.12 walks out (from the 5th teacher turn).
"""

from __future__ import annotations

import random
from typing import NamedTuple, Sequence

from mtpo_jax.envs.education import attributes, cues
from mtpo_jax.envs.education import student_phrases as sp
from mtpo_jax.envs.education import topics
from mtpo_jax.types import END_OF_CONVERSATION

INITIAL_ENGAGEMENT = {"rude": 0.5, "disengaged": 0.45, "frustrated": 0.55, "anxious": 0.55, "might_adapt": 0.6,
                      "might_tell": 0.6}
ENGAGEMENT_DROP = {"rude": 0.15, "disengaged": 0.2, "frustrated": 0.12, "anxious": 0.12, "might_adapt": 0.04,
                   "might_tell": 0.08}
INITIAL_UNDERSTANDING = 0.1
WALK_OUT_ENGAGEMENT, WALK_OUT_MIN_TURN = 0.12, 5
# Intents whose reply ends the conversation.
ENDING_INTENTS = ("goodbye", "walk_out")
NEGATIVE_INTENTS = ("confused", "rude", "disengaged", "frustrated", "anxious", "hurt", "nonsense", "puzzled",
                    "repeat", "lukewarm")


class Profile(NamedTuple):
  """Who the student is: preferred style and reaction keys (attributes.py) and the lesson topic."""
  preference: str
  reaction: str
  topic: str


class StudentState(NamedTuple):
  """Hidden state after some teacher turns. `matched` counts teaching turns in the preferred style."""
  understanding: float
  engagement: float
  revealed: bool = False
  teacher_turns: int = 0
  teaching_turns: int = 0
  matched: int = 0


def profile_from_attributes(topic: str, preference: str, reaction: str) -> Profile:
  """Profile from attribute keys, our sentences or free wordings (e.g. the released data's own strings)."""
  return Profile(attributes.student_style_of(preference), attributes.student_reaction_of(reaction), topic)


def initial_state(profile: Profile) -> StudentState:
  return StudentState(INITIAL_UNDERSTANDING, INITIAL_ENGAGEMENT[profile.reaction])


def _clip(x: float) -> float:
  return min(1.0, max(0.0, x))


def _teach(state: StudentState, c: cues.TurnCues, p: Profile, rng: random.Random) -> tuple[StudentState, str]:
  m = attributes.match_strength(c.style, p.preference)
  content = min(1.0, c.content / 3.0)
  gain = 0.06 + 0.18 * m + (0.06 if p.reaction == "might_adapt" and m < 1 else 0.0)
  u = _clip(state.understanding + content * gain * (0.5 + 0.5 * state.engagement))
  e = state.engagement + (0.12 if m >= 1 else 0.03 if m > 0 else -ENGAGEMENT_DROP[p.reaction])
  e = _clip(e + (0.03 if c.invites or c.praise else 0.0))
  state = state._replace(understanding=u, engagement=e, teaching_turns=state.teaching_turns + 1,
                         matched=state.matched + (m >= 1))
  if m >= 0.5:
    if u >= 0.45 and content > 0 and rng.random() < 0.55:
      return state, "understood"
    return state, "question" if rng.random() < 0.5 else "positive"
  r = p.reaction
  if r == "might_tell":
    if not state.revealed or rng.random() < 0.5:
      return state._replace(revealed=True), "reveal"
    return state, "confused"
  if r == "might_adapt":
    if u >= 0.45 and content > 0 and rng.random() < 0.4:
      return state, "understood"
    return state, "go_along" if rng.random() < 0.6 else "confused"
  if r in ("rude", "disengaged"):
    return state, r if e < 0.5 else "lukewarm"
  return state, r if e < 0.55 else "confused"


def react(state: StudentState, c: cues.TurnCues, earlier: Sequence[cues.TurnCues], p: Profile,
          rng: random.Random) -> tuple[StudentState, str]:
  """The student's new state and reply intent after teacher turn `c` (`earlier`: previous teacher turns)."""
  state = state._replace(teacher_turns=state.teacher_turns + 1)
  if c.ends or c.gives_up or (c.wraps_up and not cues.is_teaching(c)):
    return state, "goodbye"
  drop = None
  if c.says_nothing:
    drop, intent = 0.1, "puzzled"
  elif cues.is_repeat(c, earlier):
    drop, intent = 0.1, "repeat"
  elif c.stuffed or c.overlong:
    drop, intent = 0.1, "nonsense"
  elif c.hostile:
    drop, intent = 0.15, p.reaction if p.reaction in ("rude", "anxious", "disengaged") else "hurt"
  if drop is not None:
    state = state._replace(engagement=_clip(state.engagement - drop))
  elif c.asks_preference:
    state, intent = state._replace(engagement=_clip(state.engagement + 0.08), revealed=True), "answer_preference"
  else:
    state, intent = _teach(state, c, p, rng)
  if (p.reaction in ("rude", "disengaged") and state.engagement <= WALK_OUT_ENGAGEMENT
      and state.teacher_turns >= WALK_OUT_MIN_TURN):
    intent = "walk_out"
  return state, intent


def _topic_mid(name: str) -> str:
  return name[0].lower() + name[1:] if name.startswith("The ") else name


_BANKS = {"understood": sp.UNDERSTOOD, "question": sp.QUESTION, "positive": sp.POSITIVE, "confused": sp.CONFUSED,
          "go_along": sp.GO_ALONG, "lukewarm": sp.LUKEWARM, "rude": sp.RUDE, "disengaged": sp.DISENGAGED,
          "frustrated": sp.FRUSTRATED, "anxious": sp.ANXIOUS, "puzzled": sp.PUZZLED, "nonsense": sp.NONSENSE,
          "repeat": sp.REPEAT, "hurt": sp.HURT, "walk_out": sp.WALK_OUT}


def render(intent: str, state: StudentState, p: Profile, rng: random.Random) -> str:
  """The reply text for an intent; ending intents carry the end-of-conversation marker."""
  if intent == "answer_preference":
    text = rng.choice(sp.ANSWER_PREFIX.get(p.reaction, ("",))) + rng.choice(sp.ANSWER_PREFERENCE[p.preference])
  elif intent == "reveal":
    text = rng.choice(sp.REVEAL[p.preference])
  elif intent == "goodbye":
    text = rng.choice(sp.GOODBYE_HAPPY if state.engagement >= 0.5 else sp.GOODBYE_FLAT)
  else:
    topic = topics.lookup(p.topic)
    fact = rng.choice(topic.facts) if topic else f"{_topic_mid(p.topic)} is what we are learning about"
    text = rng.choice(_BANKS[intent]).format(topic=_topic_mid(p.topic), fact=fact)
  if intent in ENDING_INTENTS:
    text = f"{text} {END_OF_CONVERSATION}"
  return text
