"""Ragged token ids to fixed-length, right-padded arrays: the one packing every model input goes through."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mtpo_jax.text.vocabulary import EOS_ID, PAD_ID


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
