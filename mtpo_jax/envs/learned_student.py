"""A student played by a T5 trained on student turns (the paper's environment model, digest A9 step 2).

Batched: one KV-cache sampling call per `reply`. Each conversation gets its own sampling key hashed from
(seed, context id, number of turns), so a conversation's reply does not depend on its batch neighbours or on
which process holds it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import jax
import numpy as np

from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.text.packing import pack_ids
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.models.decoding import Sampler, SamplingConfig
from mtpo_jax.models.t5 import T5
from mtpo_jax.types import Conversation


def _turns(conversation: Conversation) -> list[tuple[str, str]]:
  return [(t.role.capitalize(), t.text) for t in conversation.turns]


def conversation_key(seed: int, conversation: Conversation) -> np.ndarray:
  """A raw [2] uint32 key from the conversation's identity and length."""
  digest = hashlib.sha256(f"{seed}:{conversation.context.context_id}:{len(conversation.turns)}".encode()).digest()
  return np.frombuffer(digest[:8], dtype=np.uint32).copy()


class LearnedStudent:
  """Implements `envs.base.Student` with a T5 policy over `dialogue_format.student_input`."""

  def __init__(self, model: T5, params: Any, vocab: Vocabulary, sampling: SamplingConfig = SamplingConfig(),
               input_length: int = 512, seed: int = 0):
    self.params, self.vocab, self.input_length, self.seed = params, vocab, input_length, seed
    self.sampler = Sampler(model, sampling)

  def inputs(self, conversations: Sequence[Conversation]) -> list[str]:
    count = lambda text: len(self.vocab.encode(text))
    out = []
    for c in conversations:
      h = c.context.hidden
      text, _ = fmt.student_input(c.context.visible["topic"], h["student_preference"], h["student_reaction"],
                                  _turns(c), "Student", self.input_length - 1, count)
      out.append(text)
    return out

  def reply(self, conversations: Sequence[Conversation]) -> list[str]:
    if not conversations:
      return []
    ids = pack_ids(self.vocab.encode_batch(self.inputs(conversations)), self.input_length, True, True)
    keys = np.stack([conversation_key(self.seed, c) for c in conversations])
    out = self.sampler(self.params, ids, jax.numpy.asarray(keys))
    return [self.vocab.decode(tokens) for tokens in out.tokens]
