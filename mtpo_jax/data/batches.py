"""Fixed-shape, randomly addressable SFT batches from (input, target) text pairs.

`batch(i)` is a pure function of (seed, i): the data position saved with a checkpoint is just the next batch
index, so resuming replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mtpo_jax.text.packing import pack_ids
from mtpo_jax.text.vocabulary import PAD_ID, Vocabulary


class SFTBatches:
  """Encoder inputs are truncated from the left (the newest context matters most), targets from the right.

  `batch(i, rows)` returns only rows `rows` (a slice of the global batch, e.g. this process's block under
  jax.distributed) and tokenizes only the examples those rows hold, so each process encodes its own shard.
  """

  def __init__(self, pairs: Sequence[tuple[str, str]], vocab: Vocabulary, batch_size: int, input_length: int,
               target_length: int, seed: int = 0):
    if not pairs:
      raise ValueError("SFT data is empty")
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.pairs, self.vocab = list(pairs), vocab
    self.batch_size, self.seed = batch_size, seed
    self.input_length, self.target_length = input_length, target_length
    self._encoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}

  def __len__(self) -> int:
    return len(self.pairs)

  @property
  def inputs(self) -> np.ndarray:
    """[N, input_length] encoder ids of every example (encodes them all)."""
    return self._rows(np.arange(len(self)))[0]

  def _rows(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    todo = sorted({int(e) for e in examples} - self._encoded.keys())
    if todo:
      ins = pack_ids(self.vocab.encode_batch([self.pairs[e][0] for e in todo]), self.input_length, True, True)
      outs = pack_ids(self.vocab.encode_batch([self.pairs[e][1] for e in todo]), self.target_length, False, True)
      self._encoded.update((e, (i, o)) for e, i, o in zip(todo, ins, outs))
    return (np.stack([self._encoded[int(e)][0] for e in examples]),
            np.stack([self._encoded[int(e)][1] for e in examples]))

  def _order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(len(self))

  def batch(self, index: int, rows: slice | None = None) -> dict[str, np.ndarray]:
    """Global batch `index` (a pure function of (seed, index)), or only its rows `rows`."""
    n = len(self)
    positions = list(range(index * self.batch_size, (index + 1) * self.batch_size))
    if rows is not None:
      positions = positions[rows]
    orders = {e: self._order(e) for e in {p // n for p in positions}}
    examples = np.array([orders[p // n][p % n] for p in positions], np.int64)
    return make_enc_dec_batch(*self._rows(examples))


def make_enc_dec_batch(inputs: np.ndarray, targets: np.ndarray, start_id: int = PAD_ID) -> dict[str, np.ndarray]:
  """SeqIO EncDecFeatureConverter layout from padded inputs [B, S] and targets [B, T]."""
  decoder_inputs = np.concatenate([np.full((len(targets), 1), start_id, np.int32), targets[:, :-1]], axis=1)
  return {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
          "decoder_target_tokens": targets, "decoder_loss_weights": (targets != PAD_ID).astype(np.float32)}
