"""T5 encoder-decoder in flax.linen with logical-axis partitioning and an explicit KV cache.

Every parameter is created through `nn.with_logical_partitioning`, so `nn.get_partition_spec` of the
initialised variables names every axis (`vocab`, `embed`, `heads`, `kv`, `mlp`, `relpos_buckets`);
activations carry `nn.with_logical_constraint` with `batch`, `length`, `embed`, `heads`, `mlp`, `vocab`.
The rules that map these names to mesh axes live in `mtpo_jax/partitioning.py`.

Numerics follow the published T5: RMS layer norm without mean subtraction or bias, attention logits not
scaled by 1/sqrt(d) (the scale is folded into the query initialisation), bucketed relative position
biases shared by all layers of a stack (bidirectional in the encoder, causal in the decoder), and for the
tied layout the decoder output is multiplied by d_model^-0.5 before the embedding projection.

The decoder cache is a plain pytree passed in and returned (no mutable flax collections), so decoding
is a pure function that composes with `lax.while_loop`.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from mtpo_jax.models.config import T5Config

Array = jax.Array
DecoderCache = dict[str, Any]  # {"index": [], "layers": tuple of {"self_k","self_v","cross_k","cross_v"}}
_MASK_VALUE = -1e9


def _param(module: nn.Module, name: str, shape: tuple[int, ...], axes: tuple[str | None, ...], stddev: float):
  init = nn.with_logical_partitioning(nn.initializers.normal(stddev), axes)
  return module.param(name, init, shape, module.config.param_dtype)


def _constrain(x: Array, axes: tuple[str | None, ...]) -> Array:
  return nn.with_logical_constraint(x, axes)


def relative_position_bucket(relative_position: Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> Array:
  """T5's bucketing of (key_position - query_position): exact for small offsets, log-spaced up to max_distance."""
  buckets = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets += (relative_position > 0).astype(jnp.int32) * num_buckets
    distance = jnp.abs(relative_position)
  else:
    distance = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = distance < max_exact
  safe = jnp.maximum(distance, 1).astype(jnp.float32)
  large = max_exact + (jnp.log(safe / max_exact) / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return buckets + jnp.where(is_small, distance, large)


class RMSNorm(nn.Module):
  """T5 layer norm: x * rsqrt(mean(x^2) + eps) * scale, computed in float32."""
  config: T5Config

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                       (x.shape[-1],), self.config.param_dtype)
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.config.layer_norm_epsilon)
    return (x32 * scale.astype(jnp.float32)).astype(self.config.dtype)


class RelativePositionBias(nn.Module):
  """Bias [1, heads, q_len, k_len] from a learned [buckets, heads] table."""
  config: T5Config
  bidirectional: bool

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array) -> Array:
    c = self.config
    table = _param(self, "rel_embedding", (c.relative_attention_num_buckets, c.num_heads),
                   ("relpos_buckets", "heads"), 1.0)
    buckets = relative_position_bucket(key_positions[None, :] - query_positions[:, None], self.bidirectional,
                                       c.relative_attention_num_buckets, c.relative_attention_max_distance)
    bias = jnp.take(table.astype(jnp.float32), buckets, axis=0)  # [q, k, heads]
    return jnp.transpose(bias, (2, 0, 1))[None]


class Attention(nn.Module):
  """Multi-head attention with separate projection and attend steps so K/V can be cached."""
  config: T5Config

  def setup(self):
    c = self.config
    self.wq = _param(self, "query", (c.d_model, c.num_heads, c.d_kv), ("embed", "heads", "kv"),
                     (c.d_model * c.d_kv) ** -0.5)
    self.wk = _param(self, "key", (c.d_model, c.num_heads, c.d_kv), ("embed", "heads", "kv"), c.d_model ** -0.5)
    self.wv = _param(self, "value", (c.d_model, c.num_heads, c.d_kv), ("embed", "heads", "kv"), c.d_model ** -0.5)
    self.wo = _param(self, "out", (c.num_heads, c.d_kv, c.d_model), ("heads", "kv", "embed"),
                     (c.num_heads * c.d_kv) ** -0.5)
    self.dropout = nn.Dropout(c.dropout_rate)

  def project_kv(self, x: Array) -> tuple[Array, Array]:
    """x: [B, S, embed] -> k, v: [B, S, heads, kv]."""
    dt = self.config.dtype
    k = jnp.einsum("bse,ehd->bshd", x, self.wk.astype(dt))
    v = jnp.einsum("bse,ehd->bshd", x, self.wv.astype(dt))
    axes = ("batch", "length", "heads", "kv")
    return _constrain(k, axes), _constrain(v, axes)

  def __call__(self, x: Array, k: Array, v: Array, bias: Array, deterministic: bool) -> Array:
    """x: [B, T, embed]; k, v: [B, S, heads, kv]; bias: [B|1, heads, T, S] (mask folded in) -> [B, T, embed]."""
    dt = self.config.dtype
    q = _constrain(jnp.einsum("bte,ehd->bthd", x, self.wq.astype(dt)), ("batch", "length", "heads", "kv"))
    logits = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32) + bias
    weights = jax.nn.softmax(logits, axis=-1)
    weights = self.dropout(weights, deterministic=deterministic).astype(dt)
    out = jnp.einsum("bhts,bshd->bthd", weights, v)
    out = jnp.einsum("bthd,hde->bte", out, self.wo.astype(dt))
    return _constrain(out, ("batch", "length", "embed"))


class FeedForward(nn.Module):
  """ReLU FFN (T5) or gated-GELU FFN (T5 v1.1, tanh-approximated GELU)."""
  config: T5Config

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    c, dt = self.config, self.config.dtype
    wi_std, wo_std = c.d_model ** -0.5, c.d_ff ** -0.5
    if c.feed_forward == "gated-gelu":
      wi_0 = _param(self, "wi_0", (c.d_model, c.d_ff), ("embed", "mlp"), wi_std)
      wi_1 = _param(self, "wi_1", (c.d_model, c.d_ff), ("embed", "mlp"), wi_std)
      h = jax.nn.gelu(x @ wi_0.astype(dt), approximate=True) * (x @ wi_1.astype(dt))
    else:
      wi = _param(self, "wi", (c.d_model, c.d_ff), ("embed", "mlp"), wi_std)
      h = jax.nn.relu(x @ wi.astype(dt))
    h = _constrain(h, ("batch", "length", "mlp"))
    h = nn.Dropout(c.dropout_rate)(h, deterministic=deterministic)
    wo = _param(self, "wo", (c.d_ff, c.d_model), ("mlp", "embed"), wo_std)
    return _constrain(h @ wo.astype(dt), ("batch", "length", "embed"))


class EncoderLayer(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x: Array, bias: Array, deterministic: bool) -> Array:
    drop = nn.Dropout(self.config.dropout_rate)
    h = RMSNorm(self.config, name="pre_attention_norm")(x)
    attn = Attention(self.config, name="attention")
    k, v = attn.project_kv(h)
    x = x + drop(attn(h, k, v, bias, deterministic), deterministic=deterministic)
    h = RMSNorm(self.config, name="pre_mlp_norm")(x)
    return x + drop(FeedForward(self.config, name="mlp")(h, deterministic), deterministic=deterministic)


class DecoderLayer(nn.Module):
  config: T5Config

  def setup(self):
    c = self.config
    self.pre_self_attention_norm = RMSNorm(c)
    self.self_attention = Attention(c)
    self.pre_cross_attention_norm = RMSNorm(c)
    self.cross_attention = Attention(c)
    self.pre_mlp_norm = RMSNorm(c)
    self.mlp = FeedForward(c)
    self.drop = nn.Dropout(c.dropout_rate)

  def cross_kv(self, encoded: Array) -> tuple[Array, Array]:
    return self.cross_attention.project_kv(encoded)

  def __call__(self, x: Array, self_bias: Array, cross_bias: Array, cross_k: Array, cross_v: Array,
               deterministic: bool, cache: dict[str, Array] | None = None,
               index: Array | None = None) -> tuple[Array, dict[str, Array] | None]:
    """x: [B, T, embed]. With `cache`, the T new keys/values are written at `index` and attention spans the cache."""
    h = self.pre_self_attention_norm(x)
    k, v = self.self_attention.project_kv(h)
    new_cache = None
    if cache is not None:
      k = jax.lax.dynamic_update_slice_in_dim(cache["self_k"], k.astype(cache["self_k"].dtype), index, axis=1)
      v = jax.lax.dynamic_update_slice_in_dim(cache["self_v"], v.astype(cache["self_v"].dtype), index, axis=1)
      new_cache = dict(cache, self_k=k, self_v=v)
    x = x + self.drop(self.self_attention(h, k, v, self_bias, deterministic), deterministic=deterministic)
    h = self.pre_cross_attention_norm(x)
    x = x + self.drop(self.cross_attention(h, cross_k, cross_v, cross_bias, deterministic),
                      deterministic=deterministic)
    h = self.pre_mlp_norm(x)
    x = x + self.drop(self.mlp(h, deterministic), deterministic=deterministic)
    return x, new_cache


def _padding_bias(mask: Array) -> Array:
  """mask: [B, S] (1 = attend) -> additive bias [B, 1, 1, S]."""
  return jnp.where(mask[:, None, None, :] > 0, 0.0, _MASK_VALUE).astype(jnp.float32)


def _segment_bias(query_segments: Array, key_segments: Array) -> Array:
  """Packed rows (SeqIO's EncDecFeatureConverter(pack=True)): a token attends only within its own example.
  query_segments [B, T], key_segments [B, S] (0 = padding) -> additive bias [B, 1, T, S]."""
  same = query_segments[:, None, :, None] == key_segments[:, None, None, :]
  return jnp.where(same, 0.0, _MASK_VALUE).astype(jnp.float32)


def _remat(layer_cls: type, policy: str, deterministic_argnum: int) -> type:
  """`layer_cls` wrapped in nn.remat with the named policy (models/config.REMAT_POLICIES); unchanged for "none".
  Parameter names and values are those of the plain layer, so checkpoints move freely between policies."""
  if policy == "none":
    return layer_cls
  policies = {"full": None, "dots": jax.checkpoint_policies.dots_saveable,
              "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}
  # `deterministic` decides whether dropout runs, a Python branch: static (argnums count `self` as 0).
  return nn.remat(layer_cls, policy=policies[policy], static_argnums=(deterministic_argnum,))


class T5(nn.Module):
  """Encoder-decoder T5. `__call__` returns float32 logits [B, T, vocab] (teacher forcing)."""
  config: T5Config

  def setup(self):
    c = self.config
    self.shared = _param(self, "token_embedder", (c.vocab_size, c.d_model), ("vocab", "embed"), 1.0)
    self.encoder_relpos = RelativePositionBias(c, bidirectional=True)
    encoder_layer, decoder_layer = _remat(EncoderLayer, c.remat_policy, 3), _remat(DecoderLayer, c.remat_policy, 6)
    self.encoder_layers = [encoder_layer(c, name=f"encoder_layer_{i}") for i in range(c.num_encoder_layers)]
    self.encoder_norm = RMSNorm(c)
    self.decoder_relpos = RelativePositionBias(c, bidirectional=False)
    self.decoder_layers = [decoder_layer(c, name=f"decoder_layer_{i}") for i in range(c.num_decoder_layers)]
    self.decoder_norm = RMSNorm(c)
    if not c.tie_word_embeddings:
      self.lm_head = _param(self, "logits_dense", (c.d_model, c.vocab_size), ("embed", "vocab"), c.d_model ** -0.5)
    self.drop = nn.Dropout(c.dropout_rate)

  def embed(self, ids: Array, deterministic: bool) -> Array:
    x = jnp.take(self.shared, ids, axis=0).astype(self.config.dtype)
    return self.drop(_constrain(x, ("batch", "length", "embed")), deterministic=deterministic)

  def encode(self, input_ids: Array, attention_mask: Array | None = None, deterministic: bool = True,
             segment_ids: Array | None = None) -> Array:
    """input_ids: [B, S] -> encoded [B, S, embed]. `segment_ids` [B, S]: packed examples (then the mask is
    the segments'). Relative positions need no reset per segment: within one segment they are the
    differences of row positions, and attention across segments is masked."""
    if attention_mask is None:
      attention_mask = (input_ids != self.config.pad_token_id).astype(jnp.int32)
    positions = jnp.arange(input_ids.shape[1])
    mask_bias = _padding_bias(attention_mask) if segment_ids is None else _segment_bias(segment_ids, segment_ids)
    bias = self.encoder_relpos(positions, positions) + mask_bias
    x = self.embed(input_ids, deterministic)
    for layer in self.encoder_layers:
      x = layer(x, bias, deterministic)
    return self.drop(self.encoder_norm(x), deterministic=deterministic)

  def _logits(self, x: Array) -> Array:
    c = self.config
    if c.tie_word_embeddings:
      x = x * (c.d_model ** -0.5)
      logits = jnp.einsum("bte,ve->btv", x, self.shared.astype(c.dtype), preferred_element_type=jnp.float32)
    else:
      logits = jnp.einsum("bte,ev->btv", x, self.lm_head.astype(c.dtype), preferred_element_type=jnp.float32)
    return _constrain(logits, ("batch", "length", "vocab"))

  def decoder_hidden(self, encoded: Array, encoder_mask: Array, decoder_input_ids: Array,
                     deterministic: bool = True, encoder_segment_ids: Array | None = None,
                     decoder_segment_ids: Array | None = None) -> Array:
    """Teacher-forced decoder: final normalised hidden states [B, T, embed]. With segment ids ([B, S], [B, T]:
    packed rows) each target token attends only its own example's earlier targets and inputs."""
    positions = jnp.arange(decoder_input_ids.shape[1])
    causal = jnp.where(positions[None, :] <= positions[:, None], 0.0, _MASK_VALUE)[None, None]
    self_bias = self.decoder_relpos(positions, positions) + causal
    cross_bias = _padding_bias(encoder_mask)
    if decoder_segment_ids is not None:
      self_bias = self_bias + _segment_bias(decoder_segment_ids, decoder_segment_ids)
      cross_bias = _segment_bias(decoder_segment_ids, encoder_segment_ids)
    x = self.embed(decoder_input_ids, deterministic)
    for layer in self.decoder_layers:
      ck, cv = layer.cross_kv(encoded)
      x, _ = layer(x, self_bias, cross_bias, ck, cv, deterministic)
    return self.drop(self.decoder_norm(x), deterministic=deterministic)

  def decode(self, encoded: Array, encoder_mask: Array, decoder_input_ids: Array,
             deterministic: bool = True, encoder_segment_ids: Array | None = None,
             decoder_segment_ids: Array | None = None) -> Array:
    """Teacher-forced decoder: logits [B, T, vocab] float32."""
    return self._logits(self.decoder_hidden(encoded, encoder_mask, decoder_input_ids, deterministic,
                                            encoder_segment_ids, decoder_segment_ids))

  def __call__(self, input_ids: Array, decoder_input_ids: Array, attention_mask: Array | None = None,
               deterministic: bool = True, encoder_segment_ids: Array | None = None,
               decoder_segment_ids: Array | None = None) -> Array:
    """Logits [B, T, vocab]; segment ids ([B, S], [B, T]) for packed rows, both or neither."""
    if (encoder_segment_ids is None) != (decoder_segment_ids is None):
      raise ValueError("packed rows need both encoder_segment_ids and decoder_segment_ids")
    if attention_mask is None:
      attention_mask = (input_ids != self.config.pad_token_id).astype(jnp.int32)
    encoded = self.encode(input_ids, attention_mask, deterministic, encoder_segment_ids)
    return self.decode(encoded, attention_mask, decoder_input_ids, deterministic, encoder_segment_ids,
                       decoder_segment_ids)

  def init_cache(self, encoded: Array, max_length: int) -> DecoderCache:
    """Cache for `max_length` decoder positions; cross-attention K/V are computed once here."""
    c = self.config
    b = encoded.shape[0]
    layers = []
    for layer in self.decoder_layers:
      ck, cv = layer.cross_kv(encoded)
      zeros = jnp.zeros((b, max_length, c.num_heads, c.d_kv), c.dtype)
      layers.append({"self_k": zeros, "self_v": zeros, "cross_k": ck, "cross_v": cv})
    return {"index": jnp.zeros((), jnp.int32), "layers": tuple(layers)}

  def decode_step(self, decoder_input_ids: Array, encoder_mask: Array,
                  cache: DecoderCache) -> tuple[Array, DecoderCache]:
    """Decode T new tokens [B, T] at the cache index; returns logits [B, T, vocab] and the advanced cache."""
    index = cache["index"]
    t = decoder_input_ids.shape[1]
    max_length = cache["layers"][0]["self_k"].shape[1]
    q_pos = index + jnp.arange(t)
    k_pos = jnp.arange(max_length)
    causal = jnp.where(k_pos[None, :] <= q_pos[:, None], 0.0, _MASK_VALUE)[None, None]
    self_bias = self.decoder_relpos(q_pos, k_pos) + causal
    cross_bias = _padding_bias(encoder_mask)
    x = self.embed(decoder_input_ids, True)
    new_layers = []
    for layer, layer_cache in zip(self.decoder_layers, cache["layers"]):
      x, layer_cache = layer(x, self_bias, cross_bias, layer_cache["cross_k"], layer_cache["cross_v"], True,
                             cache=layer_cache, index=index)
      new_layers.append(layer_cache)
    logits = self._logits(self.decoder_norm(x))
    return logits, {"index": index + t, "layers": tuple(new_layers)}


def shift_right(targets: Array, start_token_id: int) -> Array:
  """Decoder inputs for teacher forcing: [B, T] targets -> [start, t_0, ..., t_{T-2}]."""
  start = jnp.full((targets.shape[0], 1), start_token_id, targets.dtype)
  return jnp.concatenate([start, targets[:, :-1]], axis=1)
