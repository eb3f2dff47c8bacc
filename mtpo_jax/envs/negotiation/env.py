"""The explicit-reward negotiation environment (papers/digest.md A11, the paper's Car Dealer experiment, Table 3).

The seller is the agent and speaks first; the buyer (default: `ScriptedBuyer`) is the environment. `step`
appends each seller turn and, unless the seller ended the conversation, the buyer's reply. A conversation is done
when either side says END_OF_CONVERSATION, when the buyer accepts (a completed sale), or once the seller has
spoken `max_agent_turns` times (the buyer still answers that last turn, so a final offer can be taken). The reward
is `sale_price` (0 without a sale). Done conversations pass through `step` unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mtpo_jax.envs.base import Student
from mtpo_jax.envs.negotiation.buyer import ScriptedBuyer
from mtpo_jax.envs.negotiation.reward import is_acceptance, sale_price
from mtpo_jax.types import END_OF_CONVERSATION, Context, Conversation, Turn


class NegotiationEnv:
  """`Environment`: seller (agent) vs buyer (environment)."""

  agent_role = "seller"
  env_role = "buyer"

  def __init__(self, buyer: Student | None = None, max_agent_turns: int = 8, seed: int = 0):
    if max_agent_turns < 1:
      raise ValueError(f"max_agent_turns must be >= 1, got {max_agent_turns}")
    self.buyer = buyer if buyer is not None else ScriptedBuyer(seed)
    self.max_agent_turns = max_agent_turns

  def reset(self, contexts: Sequence[Context]) -> list[Conversation]:
    return [Conversation(context=c) for c in contexts]

  def step(self, conversations: Sequence[Conversation],
           agent_turns: Sequence[str]) -> tuple[list[Conversation], np.ndarray]:
    """Appends the seller turns and the buyer replies. Returns the conversations and done flags [batch] bool."""
    if len(conversations) != len(agent_turns):
      raise ValueError(f"{len(conversations)} conversations but {len(agent_turns)} agent turns")
    out, waiting = list(conversations), []
    for i, (c, text) in enumerate(zip(conversations, agent_turns)):
      if c.done:
        continue
      out[i] = c.append(Turn(self.agent_role, text, True), done=END_OF_CONVERSATION in text)
      if not out[i].done:
        waiting.append(i)
    replies = self.buyer.reply([out[i] for i in waiting]) if waiting else []
    for i, text in zip(waiting, replies):
      done = (END_OF_CONVERSATION in text or is_acceptance(text)
              or out[i].num_agent_turns >= self.max_agent_turns)
      out[i] = out[i].append(Turn(self.env_role, text, False), done=done)
    return out, np.array([c.done for c in out], dtype=bool)

  def reward(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 sale prices in dollars (0 without a sale)."""
    return np.array([sale_price(c) for c in conversations], dtype=np.float64)


def rollout(env: NegotiationEnv, policy, contexts: Sequence[Context]) -> list[Conversation]:
  """Plays `policy.act(conversations) -> texts` against `env` until every conversation is done."""
  conversations = env.reset(contexts)
  for _ in range(env.max_agent_turns):
    live = [i for i, c in enumerate(conversations) if not c.done]
    if not live:
      break
    texts = policy.act([conversations[i] for i in live])
    stepped, _ = env.step([conversations[i] for i in live], texts)
    for i, c in zip(live, stepped):
      conversations[i] = c
  return conversations
