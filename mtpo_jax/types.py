"""Conversation records shared by environments, judges, data tasks and rollouts. Data only, no logic.

A conversation is a context (what the episode is about, including fields hidden from the agent) and a
sequence of turns, each flagged as the agent's action or the environment's reply (LMRL-Gym's convention).
Environment turns never enter the policy loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

END_OF_CONVERSATION = "[end of conversation]"


@dataclasses.dataclass(frozen=True)
class Turn:
  """One utterance. `role` is the speaker's name in the data ("teacher", "student", "seller", ...)."""
  role: str
  text: str
  is_agent: bool


@dataclasses.dataclass(frozen=True)
class Context:
  """What an episode is about.

  `visible` may be shown to the agent (e.g. the topic); `hidden` only to the environment and the judge
  (e.g. the student's learning preference); `extra` carries anything else (ground-truth outcome, ids).
  """
  context_id: str
  visible: Mapping[str, Any]
  hidden: Mapping[str, Any]
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Conversation:
  """An episode so far. `done` is set when either side ends it or the turn limit is reached."""
  context: Context
  turns: tuple[Turn, ...] = ()
  done: bool = False

  def append(self, turn: Turn, done: bool = False) -> "Conversation":
    return dataclasses.replace(self, turns=self.turns + (turn,), done=self.done or done)

  @property
  def num_agent_turns(self) -> int:
    return sum(t.is_agent for t in self.turns)
