"""SFT batches (data/batches.py): a pure function of (seed, index), an epoch visits every example once."""

import numpy as np
import pytest

from mtpo_jax.data import toy_teacher
from mtpo_jax.data.batches import SFTBatches


def test_batches_are_a_function_of_index():
  class Vocab:
    def encode_batch(self, texts):
      return [[3 + (ord(c) % 50) for c in t] for t in texts]
  pairs = toy_teacher.generate(10, seed=1)
  b = SFTBatches(pairs, Vocab(), batch_size=4, input_length=16, target_length=16, seed=3)
  first = [b.batch(i)["encoder_input_tokens"] for i in range(5)]
  again = SFTBatches(pairs, Vocab(), batch_size=4, input_length=16, target_length=16, seed=3)
  for i in (3, 0, 4):
    np.testing.assert_array_equal(again.batch(i)["encoder_input_tokens"], first[i])
  # An epoch (10 examples) visits every example once: batches 0,1 and half of 2.
  seen = np.concatenate([b.batch(i)["encoder_input_tokens"] for i in range(3)])[:10]
  assert len({r.tobytes() for r in seen}) == len({r.tobytes() for r in b.inputs})
  with pytest.raises(ValueError, match="empty"):
    SFTBatches([], Vocab(), 4, 8, 8)
