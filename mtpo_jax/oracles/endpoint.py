"""A `Judge` that asks a prompted LLM behind an OpenAI-compatible endpoint (papers/digest.md A8, A10).

Two modes:
- "conversation": the conversation-level prompt over two full conversations (A10, Fig. 1).
- "single_turn": the single-turn variant (A8); the two conversations must share every turn but the last, which
  is the agent's candidate response.

Each pair is asked in both orders and the answers are symmetrized, so P(a, b) + P(b, a) = 1 by construction.
The answer is parsed strictly ("1" or "2", with surrounding whitespace, punctuation, markdown or an
"Interaction"/"Response" label tolerated). A malformed answer is counted and never mapped to a preference:
`on_malformed="raise"` raises at once, `"retry"` re-asks up to `max_reasks` times, then raises. With
`use_logprobs=True` and an endpoint that returns `logprobs`, the answer is soft:
P(1) = e^lp(1) / (e^lp(1) + e^lp(2)) from the top log-probs at the answer token (hard text answer otherwise).
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any, Mapping, Sequence

import numpy as np

from mtpo_jax.openai_client import ChatClient, ChatConfig, ChatReply
from mtpo_jax.oracles import prompts
from mtpo_jax.oracles.base import check_same_contexts, symmetrize
from mtpo_jax.types import Conversation

MODES = ("conversation", "single_turn")
POLICIES = ("raise", "retry")
_ANSWER = re.compile(r"^(?:(?:answer|output|final answer)\s*:?\s*)?(?:(?:interaction|response|option)\s*#?\s*)?"
                     r"([12])$")
_NOISE = " \t\r\n.,;:!?\"'`*_()[]{}<>"


class MalformedJudgementError(ValueError):
  """The judge answered something other than 1 or 2 (after the allowed re-asks)."""


def parse_choice(text: str) -> int | None:
  """1 or 2 from a judge's answer, or None when it is anything else ("banana", "1 or 2", "both")."""
  core = text.strip(_NOISE).lower()
  core = re.sub(r"\s+", " ", core)
  m = _ANSWER.match(core)
  return int(m.group(1)) if m else None


def logprob_choice(logprobs: Mapping[str, Any] | None) -> float | None:
  """P(answer 1) from OpenAI-style `logprobs.content[*].top_logprobs`, normalised over {"1", "2"}.

  Uses the first generated token that reads "1" or "2"; None when there is none or either digit is missing from
  its top log-probs.
  """
  if not isinstance(logprobs, Mapping) or not isinstance(logprobs.get("content"), list):
    return None
  for entry in logprobs["content"]:
    if not isinstance(entry, Mapping) or str(entry.get("token", "")).strip() not in ("1", "2"):
      continue
    found: dict[str, float] = {}
    for alt in entry.get("top_logprobs") or []:
      token = str(alt.get("token", "")).strip()
      if token in ("1", "2") and token not in found:
        found[token] = float(alt["logprob"])
    if len(found) < 2:
      return None
    return 1.0 / (1.0 + math.exp(found["2"] - found["1"]))
  return None


class EndpointJudge:
  """`Judge` over a `ChatClient`; see the module docstring. `stats()` adds the judge's counters to the client's."""

  def __init__(self, client: ChatClient, *, mode: str = "conversation", on_malformed: str = "raise",
               max_reasks: int = 2, use_logprobs: bool = False, top_logprobs: int = 5, max_tokens: int = 8,
               conversation_prompt: str = prompts.CONVERSATION_PROMPT,
               single_turn_prompt: str = prompts.SINGLE_TURN_PROMPT):
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if on_malformed not in POLICIES:
      raise ValueError(f"on_malformed must be one of {POLICIES}, got {on_malformed!r}")
    self.client, self.mode, self.on_malformed, self.max_reasks = client, mode, on_malformed, max_reasks
    self.use_logprobs = use_logprobs
    self.overrides: dict[str, Any] = {"max_tokens": max_tokens}
    if use_logprobs:
      self.overrides.update(logprobs=True, top_logprobs=top_logprobs)
    self.conversation_prompt, self.single_turn_prompt = conversation_prompt, single_turn_prompt
    self._lock = threading.Lock()
    self._counts = {"judgements": 0, "malformed": 0, "reasks": 0, "soft": 0}

  def prompt(self, first: Conversation, second: Conversation) -> str:
    """The prompt text showing `first` as option 1 and `second` as option 2."""
    context = prompts.render_context(first.context.visible)
    if self.mode == "conversation":
      return self.conversation_prompt.format(context=context, interaction_1=prompts.render_turns(first.turns),
                                             interaction_2=prompts.render_turns(second.turns))
    return self.single_turn_prompt.format(context=context, conversation=prompts.render_turns(first.turns[:-1]),
                                          response_1=first.turns[-1].text, response_2=second.turns[-1].text)

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64: P(a[i] preferred to b[i]) = (P1(a, b) + 1 - P1(b, a)) / 2."""
    check_same_contexts(a, b)
    if self.mode == "single_turn":
      for i, (x, y) in enumerate(zip(a, b)):
        _check_single_turn_pair(i, x, y)
    n = len(a)
    if n == 0:
      return np.zeros((0,), np.float64)
    texts = [self.prompt(x, y) for x, y in zip(a, b)] + [self.prompt(y, x) for x, y in zip(a, b)]
    p_first = self._ask(texts)
    return symmetrize(p_first[:n], p_first[n:])

  def stats(self) -> dict[str, int]:
    with self._lock:
      own = {f"judge_{k}": v for k, v in self._counts.items()}
    return {**self.client.stats(), **own}

  def _count(self, name: str, n: int = 1) -> None:
    with self._lock:
      self._counts[name] += n

  def _score(self, reply: ChatReply) -> float | None:
    """P(option 1) from one reply, or None when malformed."""
    if self.use_logprobs:
      p = logprob_choice(reply.logprobs)
      if p is not None:
        self._count("soft")
        return p
    choice = parse_choice(reply.text)
    return None if choice is None else float(choice == 1)

  def _ask(self, texts: list[str]) -> np.ndarray:
    """P(option 1) for each prompt, re-asking malformed ones per the policy."""
    out = np.full((len(texts),), np.nan)
    pending = list(range(len(texts)))
    last_text: dict[int, str] = {}
    for round_ in range(1 + (self.max_reasks if self.on_malformed == "retry" else 0)):
      if round_ > 0:
        self._count("reasks", len(pending))
      replies = self.client.complete_batch([[{"role": "user", "content": texts[i]}] for i in pending],
                                           **self.overrides)
      bad = []
      for i, reply in zip(pending, replies):
        p = self._score(reply)
        if p is None:
          bad.append(i)
          last_text[i] = reply.text
        else:
          out[i] = p
      self._count("judgements", len(pending) - len(bad))
      self._count("malformed", len(bad))
      pending = bad
      if not pending:
        return out
    i = pending[0]
    raise MalformedJudgementError(
        f"{len(pending)} of {len(texts)} judge answers were not 1 or 2 (policy {self.on_malformed!r}, "
        f"{round_ + 1} attempt(s)); e.g. prompt {i} got {last_text[i][:200]!r} from {self.client.url}")


def _check_single_turn_pair(i: int, x: Conversation, y: Conversation) -> None:
  if not x.turns or not y.turns or not (x.turns[-1].is_agent and y.turns[-1].is_agent):
    raise ValueError(f"single-turn pair {i}: both conversations must end with an agent turn")
  if x.turns[:-1] != y.turns[:-1]:
    raise ValueError(f"single-turn pair {i}: the conversations must share every turn but the last")


def endpoint_judge(chat: ChatConfig, mode: str = "conversation", on_malformed: str = "raise", max_reasks: int = 2,
                   use_logprobs: bool = False) -> EndpointJudge:
  """An EndpointJudge over a new ChatClient for `chat` (Gin: `endpoint_judge.chat = @ChatConfig()`, with
  ChatConfig.base_url and .model): a hosted LLM judge wherever a judge is bound (train_rl.judge, PairData.judge)."""
  return EndpointJudge(ChatClient(chat), mode=mode, on_malformed=on_malformed, max_reasks=max_reasks,
                       use_logprobs=use_logprobs)
