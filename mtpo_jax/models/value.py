"""Turn-level value model: the T5 backbone with a scalar head, one value per conversation state.

The state's tokens go through the encoder; the decoder reads a single start token and the value is a linear
function of its final hidden state (papers digest A7: "one scalar per state (turn), not one per token").
Sharing the policy's parameter layout lets a value model start from a policy checkpoint.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5


class T5Value(nn.Module):
  """input_ids [B, S] -> values [B] float32."""
  config: T5Config

  def setup(self):
    self.backbone = T5(self.config)
    init = nn.with_logical_partitioning(nn.initializers.zeros, ("embed",))
    self.head = self.param("value_head", init, (self.config.d_model,), self.config.param_dtype)
    self.bias = self.param("value_bias", nn.with_logical_partitioning(nn.initializers.zeros, ()), (),
                           self.config.param_dtype)

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
               deterministic: bool = True) -> jax.Array:
    c = self.config
    if attention_mask is None:
      attention_mask = (input_ids != c.pad_token_id).astype(jnp.int32)
    encoded = self.backbone.encode(input_ids, attention_mask, deterministic)
    start = jnp.full((input_ids.shape[0], 1), c.decoder_start_token_id, jnp.int32)
    hidden = self.backbone.decoder_hidden(encoded, attention_mask, start, deterministic)[:, 0]
    return hidden.astype(jnp.float32) @ self.head.astype(jnp.float32) + self.bias.astype(jnp.float32)


def value_params_from_policy(value_params: dict[str, Any], policy_params: dict[str, Any]) -> dict[str, Any]:
  """Replaces the value model's backbone with a policy's parameters (head kept as initialised)."""
  expected = jax.tree.structure(value_params["backbone"])
  if jax.tree.structure(policy_params) != expected:
    raise ValueError("policy parameters do not match the value model's backbone (different T5Config?)")
  return {**value_params, "backbone": policy_params}
