"""The Education Dialogue environment: the policy is the teacher, a Student replies (envs/base.py protocol).

    env = EducationEnv(ScriptedStudent(seed=0))
    convs = env.reset(contexts)                  # empty conversations: the teacher speaks first
    convs, done = env.step(convs, teacher_texts)  # done: [batch] bool

`step` appends each teacher turn (`is_agent=True`), then the student's reply to every conversation the teacher
did not end. A conversation is done when either side's turn contains `[end of conversation]` (any
capitalisation), or after the teacher's `max_agent_turns`-th turn (default 10: the paper's 10-turn episodes);
that last teacher turn still gets its reply, so the judge sees how it landed.

Input errors raise ValueError/TypeError: batch-length mismatch, stepping a finished conversation, a conversation
whose last turn is already the teacher's, a non-string turn. An empty (or whitespace) teacher turn is allowed and
recorded as is; the scripted student treats it as a turn that says nothing ("Sorry, I didn't catch that.") and
loses engagement, and the rubric judge penalises it.

`ScriptedStudent` is the generator's student (student.py): it reads the hidden preference and reaction from the
context, rebuilds its state from the teacher turns so far, and draws each reply's randomness from a hash of
(seed, context_id, turn index), so the same conversation gets the same reply in any batch position or process.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from mtpo_jax.envs.education import cues, student
from mtpo_jax.envs.education.convert import AGENT_ROLE, ENV_ROLE
from mtpo_jax.types import Context, Conversation, Turn

DEFAULT_MAX_AGENT_TURNS = 10


def profile_of(context: Context) -> student.Profile:
  """The student's profile from a context's visible topic and hidden preference/reaction."""
  try:
    topic = context.visible["topic"]
    pref, reaction = context.hidden["student_preference"], context.hidden["student_reaction"]
  except KeyError as e:
    raise ValueError(f"context {context.context_id!r} lacks {e.args[0]!r} (see envs/education/convert.py)") from None
  return student.profile_from_attributes(topic, pref, reaction)


class ScriptedStudent:
  """The simulated student as a `Student`: deterministic given (seed, conversation)."""

  def __init__(self, seed: int = 0):
    self.seed = seed

  def _rng(self, context_id: str, turn_index: int) -> random.Random:
    return random.Random(f"student:{self.seed}:{context_id}:{turn_index}")

  def state(self, conversation: Conversation) -> tuple[student.StudentState, str]:
    """(hidden state, reply intent) after the conversation's teacher turns so far."""
    profile = profile_of(conversation.context)
    state, intent, earlier = student.initial_state(profile), "puzzled", []
    for i, turn in enumerate(conversation.turns):
      if turn.is_agent:
        c = cues.analyze_turn(turn.text, profile.topic)
        state, intent = student.react(state, c, earlier, profile, self._rng(conversation.context.context_id, i))
        earlier.append(c)
    return state, intent

  def reply(self, conversations: Sequence[Conversation]) -> list[str]:
    """One reply per conversation whose last turn is the teacher's."""
    out = []
    for conv in conversations:
      if not conv.turns or not conv.turns[-1].is_agent:
        raise ValueError(f"conversation {conv.context.context_id!r}: the student replies only to a teacher turn")
      state, intent = self.state(conv)
      rng = self._rng(conv.context.context_id, len(conv.turns))
      out.append(student.render(intent, state, profile_of(conv.context), rng))
    return out


class EducationEnv:
  """Batched Education Dialogue episodes over any `Student` (module docstring)."""

  agent_role = AGENT_ROLE
  env_role = ENV_ROLE

  def __init__(self, student_model=None, max_agent_turns: int = DEFAULT_MAX_AGENT_TURNS):
    if max_agent_turns < 1:
      raise ValueError(f"max_agent_turns must be >= 1, got {max_agent_turns}")
    self.student = student_model if student_model is not None else ScriptedStudent()
    self.max_agent_turns = max_agent_turns

  def reset(self, contexts: Sequence[Context]) -> list[Conversation]:
    return [Conversation(context=c) for c in contexts]

  def step(self, conversations: Sequence[Conversation],
           agent_turns: Sequence[str]) -> tuple[list[Conversation], np.ndarray]:
    """Appends the teacher turns and the student's replies; returns (conversations, done [batch] bool)."""
    if isinstance(agent_turns, str):
      raise TypeError("agent_turns must be a sequence of strings, one per conversation, not one string")
    if len(conversations) != len(agent_turns):
      raise ValueError(f"got {len(conversations)} conversations but {len(agent_turns)} agent turns")
    updated = []
    for i, (conv, text) in enumerate(zip(conversations, agent_turns)):
      if not isinstance(text, str):
        raise TypeError(f"agent turn {i} is {type(text).__name__}, expected str")
      if conv.done:
        raise ValueError(f"conversation {i} ({conv.context.context_id!r}) is already done")
      if conv.turns and conv.turns[-1].is_agent:
        raise ValueError(f"conversation {i} ({conv.context.context_id!r}) already ends with a teacher turn")
      conv = conv.append(Turn(AGENT_ROLE, text, True), done=cues.says_end(text))
      updated.append(conv)
    waiting = [i for i, c in enumerate(updated) if not c.done]
    replies = self.student.reply([updated[i] for i in waiting]) if waiting else []
    for i, text in zip(waiting, replies):
      conv = updated[i]
      over = conv.num_agent_turns >= self.max_agent_turns
      updated[i] = conv.append(Turn(ENV_ROLE, text, False), done=over or cues.says_end(text))
    return updated, np.array([c.done for c in updated], dtype=bool)
