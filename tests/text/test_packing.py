"""Fixed-length id packing (text/packing.py) by hand."""

import numpy as np

from mtpo_jax.text.packing import pack_ids


def test_pack_ids_truncation():
  out = pack_ids([[5, 6, 7, 8], [9]], 3, truncate_left=True, add_eos=True)
  np.testing.assert_array_equal(out, [[7, 8, 1], [9, 1, 0]])
  out = pack_ids([[5, 6, 7, 8]], 3, truncate_left=False, add_eos=True)
  np.testing.assert_array_equal(out, [[5, 6, 1]])
