"""The batched text-environment protocol.

    conversations = env.reset(contexts)
    conversations, done = env.step(conversations, agent_turns)

`step` appends each agent turn, then (for conversations not finished by it) the environment's reply, and
marks a conversation done when either side says END_OF_CONVERSATION or `max_agent_turns` is reached.
Environments are deterministic given their seed and the conversation (so the same conversation gets the same
reply whichever process or batch position holds it).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from mtpo_jax.types import Context, Conversation


class Environment(Protocol):
  agent_role: str
  env_role: str
  max_agent_turns: int

  def reset(self, contexts: Sequence[Context]) -> list[Conversation]:
    ...

  def step(self, conversations: Sequence[Conversation],
           agent_turns: Sequence[str]) -> tuple[list[Conversation], np.ndarray]:
    """Returns the updated conversations and done flags [batch] bool."""
    ...


class Student(Protocol):
  """The environment side of a dialogue: replies to a batch of conversations whose last turn is the agent's."""

  def reply(self, conversations: Sequence[Conversation]) -> list[str]:
    ...
