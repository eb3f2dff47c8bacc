"""Fixed-shape, randomly addressable SFT batches from (input, target) text pairs.

`batch(i)` is a pure function of (seed, i): the data position saved with a checkpoint is just the next batch
index, so resuming replays exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mtpo_jax.data.vocabulary import EOS_ID, PAD_ID, Vocabulary


def pack_ids(seqs: Sequence[Sequence[int]], length: int, truncate_left: bool, add_eos: bool) -> np.ndarray:
  """[N] ragged ids -> [N, length] right-padded with PAD; EOS appended (and kept) when `add_eos`."""
  out = np.full((len(seqs), length), PAD_ID, np.int32)
  for i, s in enumerate(seqs):
    budget = length - 1 if add_eos else length
    s = list(s[-budget:]) if truncate_left else list(s[:budget])
    if add_eos:
      s.append(EOS_ID)
    out[i, :len(s)] = s
  return out


class SFTBatches:
  """Encoder inputs are truncated from the left (the newest context matters most), targets from the right."""

  def __init__(self, pairs: Sequence[tuple[str, str]], vocab: Vocabulary, batch_size: int, input_length: int,
               target_length: int, seed: int = 0):
    if not pairs:
      raise ValueError("SFT data is empty")
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    self.batch_size, self.seed = batch_size, seed
    self.inputs = pack_ids(vocab.encode_batch([p[0] for p in pairs]), input_length, True, True)
    self.targets = pack_ids(vocab.encode_batch([p[1] for p in pairs]), target_length, False, True)

  def __len__(self) -> int:
    return len(self.inputs)

  def _order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(len(self))

  def batch(self, index: int) -> dict[str, np.ndarray]:
    n = len(self)
    start = index * self.batch_size
    positions = range(start, start + self.batch_size)
    orders = {e: self._order(e) for e in {p // n for p in positions}}
    rows = [orders[p // n][p % n] for p in positions]
    return make_enc_dec_batch(self.inputs[rows], self.targets[rows])


def make_enc_dec_batch(inputs: np.ndarray, targets: np.ndarray, start_id: int = PAD_ID) -> dict[str, np.ndarray]:
  """SeqIO EncDecFeatureConverter layout from padded inputs [B, S] and targets [B, T]."""
  decoder_inputs = np.concatenate([np.full((len(targets), 1), start_id, np.int32), targets[:, :-1]], axis=1)
  return {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
          "decoder_target_tokens": targets, "decoder_loss_weights": (targets != PAD_ID).astype(np.float32)}
