"""The encoder-decoder batch layout (SeqIO's EncDecFeatureConverter, unpacked) from padded id arrays.

The trainers read SeqIO tasks through data/task_data.py, which runs the converter itself; this builds the same
layout from arrays a benchmark or test makes directly.
"""

from __future__ import annotations

import numpy as np

from mtpo_jax.text.vocabulary import PAD_ID


def make_enc_dec_batch(inputs: np.ndarray, targets: np.ndarray, start_id: int = PAD_ID) -> dict[str, np.ndarray]:
  """SeqIO EncDecFeatureConverter layout from padded inputs [B, S] and targets [B, T]."""
  decoder_inputs = np.concatenate([np.full((len(targets), 1), start_id, np.int32), targets[:, :-1]], axis=1)
  return {"encoder_input_tokens": inputs, "decoder_input_tokens": decoder_inputs,
          "decoder_target_tokens": targets, "decoder_loss_weights": (targets != PAD_ID).astype(np.float32)}
