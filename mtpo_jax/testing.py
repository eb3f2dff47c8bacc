"""Builders the tests share: tiny T5 configs, the project vocabulary, toy batches. Not used by the library."""

from __future__ import annotations

import functools

from mtpo_jax.models.config import T5Config
from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary

# The tiny shape most tests share; every field can be overridden by keyword.
TINY = dict(d_model=32, d_kv=8, d_ff=64, num_heads=4)


def tiny_config(vocab_size: int = 64, *, layers: int | None = None, **overrides) -> T5Config:
  """A small T5Config: `TINY` with `overrides` on top; `layers` sets both encoder and decoder depth."""
  if layers is not None:
    if "num_encoder_layers" in overrides or "num_decoder_layers" in overrides:
      raise TypeError("tiny_config: give either layers or num_encoder_layers/num_decoder_layers, not both")
    overrides.update(num_encoder_layers=layers, num_decoder_layers=layers)
  return T5Config(vocab_size=vocab_size, **{**TINY, **overrides})


@functools.lru_cache(maxsize=None)
def project_vocabulary() -> Vocabulary:
  """The committed SentencePiece vocabulary (`DEFAULT_SPM_PATH`), loaded once per process."""
  return Vocabulary(DEFAULT_SPM_PATH)
