"""T5 hyper-parameters as one frozen dataclass (hashable, so it can be a static jit argument)."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import jax.numpy as jnp

FeedForward = Literal["relu", "gated-gelu"]
# jax.checkpoint policies for each encoder/decoder layer (T5Config.remat_policy): what the backward pass keeps
# from the forward pass instead of recomputing it. "none" keeps everything (no rematerialisation).
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Shape and numerics of one T5 encoder-decoder.

  `feed_forward="relu"` with `tie_word_embeddings=True` is the original T5 layout; `"gated-gelu"` with
  untied embeddings is T5 v1.1 / Flan-T5. `dtype` is the compute dtype (bf16 on accelerators),
  `param_dtype` the storage dtype of the parameters (fp32). Logits are always returned in float32.
  `remat_policy` (REMAT_POLICIES) rematerialises each layer's activations in the backward pass: "full" keeps
  only the layer inputs (recomputes the whole layer), "dots" keeps the matmul outputs
  (jax.checkpoint_policies.dots_saveable), "dots_no_batch" those without batch dimensions (the weight-stationary
  ones, MaxText's "minimal"). It changes memory and time, never the result.
  """

  vocab_size: int = 512
  d_model: int = 64
  d_kv: int = 16
  d_ff: int = 128
  num_heads: int = 4
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.0
  layer_norm_epsilon: float = 1e-6
  feed_forward: FeedForward = "gated-gelu"
  tie_word_embeddings: bool = False
  pad_token_id: int = 0
  eos_token_id: int = 1
  decoder_start_token_id: int = 0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  remat_policy: str = "none"

  def __post_init__(self):
    if self.feed_forward not in ("relu", "gated-gelu"):
      raise ValueError(f"T5Config.feed_forward must be 'relu' or 'gated-gelu', got {self.feed_forward!r}")
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(f"T5Config.remat_policy must be one of {REMAT_POLICIES}, got {self.remat_policy!r}")
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_heads", "num_encoder_layers", "num_decoder_layers"):
      if getattr(self, name) <= 0:
        raise ValueError(f"T5Config.{name} must be positive, got {getattr(self, name)}")

  def replace(self, **kwargs) -> "T5Config":
    return dataclasses.replace(self, **kwargs)

  @property
  def num_params_estimate(self) -> int:
    """Parameter count from the shapes alone (used for FLOP and MFU estimates)."""
    d, h = self.d_model, self.num_heads * self.d_kv
    ffn = d * self.d_ff * (3 if self.feed_forward == "gated-gelu" else 2)
    enc = self.num_encoder_layers * (4 * d * h + ffn + 2 * d)
    dec = self.num_decoder_layers * (8 * d * h + ffn + 3 * d)
    emb = self.vocab_size * d * (1 if self.tie_word_embeddings else 2)
    return enc + dec + emb + 2 * d + 2 * self.relative_attention_num_buckets * self.num_heads
