"""Plays batches of conversations between a T5 policy and an environment, keeping what the update needs.

Every agent turn becomes one row: the encoder ids the policy actually saw, the decoder ids it sampled (never
re-tokenised from text), their log-probs under the sampling distribution and a token mask. Environment turns
never become rows, so they never enter the policy loss. Only unfinished conversations are sampled each round.
Each conversation samples with its own key, hashed from (seed, iteration, context id, copy, turn), so a
trajectory does not depend on its batch position or on which process plays it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Sequence

import jax.numpy as jnp
import numpy as np

from mtpo_jax.data import dialogue_format as fmt
from mtpo_jax.data.batches import pack_ids
from mtpo_jax.data.vocabulary import Vocabulary
from mtpo_jax.envs.base import Environment
from mtpo_jax.models.decoding import Sampler
from mtpo_jax.types import Context, Conversation

PromptFn = Callable[[Conversation, int, fmt.TokenCounter], str]


@dataclasses.dataclass
class RolloutBatch:
  """N agent-turn rows over C conversations of at most T agent turns.

  encoder_ids [N, S] int32, decoder_ids [N, L] int32 (EOS included), logp [N, L] float32 (sampling
  distribution), token_mask [N, L] float32; conversation [N], turn [N]; turn_rows [C, T] (row of each agent
  turn, -1 = none), turn_mask [C, T]; conversations: the C final Conversation records; pairs [P, 2]: the
  conversation indices of the copies of one context (copies = 2), else empty.
  """
  encoder_ids: np.ndarray
  decoder_ids: np.ndarray
  logp: np.ndarray
  token_mask: np.ndarray
  conversation: np.ndarray
  turn: np.ndarray
  turn_rows: np.ndarray
  turn_mask: np.ndarray
  conversations: list[Conversation]
  pairs: np.ndarray

  @property
  def num_rows(self) -> int:
    return len(self.encoder_ids)


def education_prompt(conversation: Conversation, max_tokens: int, count_tokens: fmt.TokenCounter) -> str:
  """The teacher's input: topic and history (dialogue_format.teacher_input), never hidden fields."""
  turns = [(t.role.capitalize(), t.text) for t in conversation.turns]
  text, _ = fmt.teacher_input(conversation.context.visible["topic"], turns, "Teacher", max_tokens, count_tokens)
  return text


def conversation_key(seed: int, iteration: int, context_id: str, copy: int, turn: int) -> np.ndarray:
  digest = hashlib.sha256(f"{seed}:{iteration}:{context_id}:{copy}:{turn}".encode()).digest()
  return np.frombuffer(digest[:8], dtype=np.uint32).copy()


def collect(env: Environment, sampler: Sampler, params: Any, vocab: Vocabulary, contexts: Sequence[Context], *,
            copies: int = 1, input_length: int = 512, prompt_fn: PromptFn = education_prompt, seed: int = 0,
            iteration: int = 0) -> RolloutBatch:
  """Plays `copies` conversations per context until all are done (the env enforces its turn limit)."""
  if not contexts:
    raise ValueError("collect() needs at least one context")
  count = lambda text: len(vocab.encode(text))
  convs = env.reset([c for c in contexts for _ in range(copies)])
  copy_of = [k for _ in contexts for k in range(copies)]
  rows: list[dict] = []
  turns_of: list[list[int]] = [[] for _ in convs]
  while True:
    active = [i for i, c in enumerate(convs) if not c.done]
    if not active:
      break
    texts = [prompt_fn(convs[i], input_length - 1, count) for i in active]
    ids = pack_ids(vocab.encode_batch(texts), input_length, truncate_left=True, add_eos=True)
    keys = np.stack([conversation_key(seed, iteration, convs[i].context.context_id, copy_of[i],
                                      convs[i].num_agent_turns) for i in active])
    out = sampler(params, ids, jnp.asarray(keys))
    replies = [vocab.decode(tokens).strip() for tokens in out.tokens]
    stepped, _ = env.step([convs[i] for i in active], replies)
    for j, i in enumerate(active):
      length = int(out.lengths[j])
      mask = (np.arange(out.tokens.shape[1]) < length).astype(np.float32)
      turns_of[i].append(len(rows))
      rows.append({"enc": ids[j], "dec": out.tokens[j], "logp": out.logprobs[j] * mask, "mask": mask, "conv": i,
                   "turn": len(turns_of[i]) - 1})
      convs[i] = stepped[j]
  t = max(len(r) for r in turns_of)
  turn_rows = np.full((len(convs), t), -1, np.int32)
  for i, r in enumerate(turns_of):
    turn_rows[i, :len(r)] = r
  pairs = (np.arange(len(convs)).reshape(-1, copies) if copies == 2 else np.zeros((0, 2), int)).astype(np.int32)
  stack = lambda k, dt: np.stack([r[k] for r in rows]).astype(dt)
  return RolloutBatch(stack("enc", np.int32), stack("dec", np.int32), stack("logp", np.float32),
                      stack("mask", np.float32), np.array([r["conv"] for r in rows], np.int32),
                      np.array([r["turn"] for r in rows], np.int32), turn_rows, (turn_rows >= 0).astype(np.float32),
                      convs, pairs)


def pad_rows(batch: RolloutBatch, rewards: np.ndarray, num_rows: int, num_turns: int) -> dict[str, np.ndarray]:
  """Fixed-shape arrays for the jitted update: rows padded to `num_rows`, turns to `num_turns`."""
  n, c = batch.num_rows, len(batch.conversations)
  if n > num_rows or batch.turn_rows.shape[1] > num_turns:
    raise ValueError(f"rollout has {n} rows / {batch.turn_rows.shape[1]} turns; buckets are {num_rows} / {num_turns}")
  pad = lambda x, rows: np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)])
  turn_rows = np.full((c, num_turns), -1, np.int32)
  turn_rows[:, :batch.turn_rows.shape[1]] = batch.turn_rows
  padded_rewards = np.zeros((c, num_turns), np.float32)
  padded_rewards[:, :rewards.shape[1]] = rewards
  return {"encoder_ids": pad(batch.encoder_ids, num_rows), "decoder_ids": pad(batch.decoder_ids, num_rows),
          "token_mask": pad(batch.token_mask, num_rows), "row_mask": pad(np.ones(n, np.float32), num_rows),
          "turn_rows": turn_rows, "turn_mask": (turn_rows >= 0).astype(np.float32), "rewards": padded_rewards}
