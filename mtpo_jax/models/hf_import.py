"""Hugging Face T5 checkpoints (config.json + *.safetensors) to and from our parameter tree.

Reads only local files; nothing is downloaded. Supports the original T5 layout (ReLU FFN, tied embeddings),
T5 v1.1 and Flan-T5 (gated-GELU FFN, untied `lm_head`), and sharded checkpoints with a
`model.safetensors.index.json`. Torch is not needed: tensors are read with `safetensors.numpy`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5

Params = dict[str, Any]
_FFN = {"relu": "relu", "gated-gelu": "gated-gelu"}


class HFCheckpointError(ValueError):
  """A local Hugging Face checkpoint directory is missing files or holds unexpected tensors."""


def config_from_hf(hf: dict[str, Any], dtype=jnp.float32) -> T5Config:
  """Maps a Hugging Face T5 `config.json` dict onto T5Config."""
  proj = hf.get("feed_forward_proj", "relu")
  if proj not in _FFN:
    raise HFCheckpointError(f"feed_forward_proj={proj!r} is not supported (supported: {sorted(_FFN)})")
  num_layers = hf["num_layers"]
  return T5Config(
      vocab_size=hf["vocab_size"], d_model=hf["d_model"], d_kv=hf["d_kv"], d_ff=hf["d_ff"],
      num_heads=hf["num_heads"], num_encoder_layers=num_layers,
      num_decoder_layers=hf.get("num_decoder_layers") or num_layers,
      relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
      relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
      dropout_rate=hf.get("dropout_rate", 0.1), layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
      feed_forward=_FFN[proj], tie_word_embeddings=_scales_decoder_output(hf),
      pad_token_id=hf.get("pad_token_id", 0), eos_token_id=hf.get("eos_token_id", 1),
      decoder_start_token_id=hf.get("decoder_start_token_id", 0), dtype=dtype)


def _scales_decoder_output(hf: dict[str, Any]) -> bool:
  """Whether the checkpoint multiplies the decoder output by d_model^-0.5 (the original, tied T5 layout).

  transformers 5 writes `scale_decoder_outputs` and always ties `lm_head` to `shared` (so a v1.1 model saved
  by it is tied but unscaled); older files and Google's releases use `tie_word_embeddings` for both.
  """
  if "scale_decoder_outputs" in hf:
    return bool(hf["scale_decoder_outputs"])
  return bool(hf.get("tie_word_embeddings", True))


def config_to_hf(c: T5Config) -> dict[str, Any]:
  return {
      "architectures": ["T5ForConditionalGeneration"], "model_type": "t5", "vocab_size": c.vocab_size,
      "d_model": c.d_model, "d_kv": c.d_kv, "d_ff": c.d_ff, "num_heads": c.num_heads,
      "num_layers": c.num_encoder_layers, "num_decoder_layers": c.num_decoder_layers,
      "relative_attention_num_buckets": c.relative_attention_num_buckets,
      "relative_attention_max_distance": c.relative_attention_max_distance, "dropout_rate": c.dropout_rate,
      "layer_norm_epsilon": c.layer_norm_epsilon, "feed_forward_proj": c.feed_forward,
      "tie_word_embeddings": c.tie_word_embeddings, "scale_decoder_outputs": c.tie_word_embeddings,
      "pad_token_id": c.pad_token_id,
      "eos_token_id": c.eos_token_id, "decoder_start_token_id": c.decoder_start_token_id,
      "is_encoder_decoder": True,
  }


def _read_tensors(path: str) -> dict[str, np.ndarray]:
  single = os.path.join(path, "model.safetensors")
  index = os.path.join(path, "model.safetensors.index.json")
  if os.path.exists(single):
    return load_file(single)
  if os.path.exists(index):
    with open(index) as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    tensors: dict[str, np.ndarray] = {}
    for shard in shards:
      tensors.update(load_file(os.path.join(path, shard)))
    return tensors
  raise HFCheckpointError(f"{path}: no model.safetensors or model.safetensors.index.json "
                          "(PyTorch .bin checkpoints are not read; convert them with safetensors first)")


def _attention(get, prefix: str, c: T5Config) -> Params:
  """HF q/k/v weights are [heads*kv, embed]; ours are [embed, heads, kv] and out is [heads, kv, embed]."""
  h, d = c.num_heads, c.d_kv
  qkv = {n: get(f"{prefix}.{s}.weight").T.reshape(c.d_model, h, d) for n, s in
         (("query", "q"), ("key", "k"), ("value", "v"))}
  qkv["out"] = get(f"{prefix}.o.weight").T.reshape(h, d, c.d_model)
  return qkv


def _mlp(get, prefix: str, c: T5Config) -> Params:
  names = ("wi_0", "wi_1", "wo") if c.feed_forward == "gated-gelu" else ("wi", "wo")
  return {n: get(f"{prefix}.DenseReluDense.{n}.weight").T for n in names}


def params_from_hf_tensors(tensors: dict[str, np.ndarray], c: T5Config) -> Params:
  """Maps HF tensor names to our tree; raises HFCheckpointError naming missing or unused tensors."""
  used: set[str] = set()

  def get(name: str) -> np.ndarray:
    if name not in tensors:
      raise HFCheckpointError(f"missing tensor {name!r}")
    used.add(name)
    return np.asarray(tensors[name], dtype=np.float32)

  norm = lambda name: {"scale": get(name)}
  p: Params = {"token_embedder": get("shared.weight"),
               "encoder_relpos": {"rel_embedding": get(
                   "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")},
               "decoder_relpos": {"rel_embedding": get(
                   "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")},
               "encoder_norm": norm("encoder.final_layer_norm.weight"),
               "decoder_norm": norm("decoder.final_layer_norm.weight")}
  for i in range(c.num_encoder_layers):
    b = f"encoder.block.{i}.layer"
    p[f"encoder_layer_{i}"] = {"pre_attention_norm": norm(f"{b}.0.layer_norm.weight"),
                               "attention": _attention(get, f"{b}.0.SelfAttention", c),
                               "pre_mlp_norm": norm(f"{b}.1.layer_norm.weight"), "mlp": _mlp(get, f"{b}.1", c)}
  for i in range(c.num_decoder_layers):
    b = f"decoder.block.{i}.layer"
    p[f"decoder_layer_{i}"] = {"pre_self_attention_norm": norm(f"{b}.0.layer_norm.weight"),
                               "self_attention": _attention(get, f"{b}.0.SelfAttention", c),
                               "pre_cross_attention_norm": norm(f"{b}.1.layer_norm.weight"),
                               "cross_attention": _attention(get, f"{b}.1.EncDecAttention", c),
                               "pre_mlp_norm": norm(f"{b}.2.layer_norm.weight"), "mlp": _mlp(get, f"{b}.2", c)}
  if not c.tie_word_embeddings:
    # An unscaled head stored as a tied alias (transformers 5) is the embedding itself.
    p["logits_dense"] = (get("lm_head.weight") if "lm_head.weight" in tensors else p["token_embedder"]).T
  # Tied copies of the embedding are aliases, not extra parameters.
  aliases = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
  if c.tie_word_embeddings:
    aliases.add("lm_head.weight")
  unused = sorted(set(tensors) - used - aliases)
  if unused:
    raise HFCheckpointError(f"tensors not mapped onto the model (wrong config?): {unused[:8]}"
                            + (" ..." if len(unused) > 8 else ""))
  return p


def load_hf_t5(path: str, dtype=jnp.float32) -> tuple[T5, Params]:
  """Loads a local HF T5 directory; returns (model, params) for `model.apply({"params": params}, ...)`."""
  config_path = os.path.join(path, "config.json")
  if not os.path.isdir(path):
    raise HFCheckpointError(f"{path}: not a directory")
  if not os.path.exists(config_path):
    raise HFCheckpointError(f"{path}: no config.json")
  with open(config_path) as f:
    config = config_from_hf(json.load(f), dtype=dtype)
  params = params_from_hf_tensors(_read_tensors(path), config)
  return T5(config), _to_jnp(params)


def _to_jnp(tree):
  if isinstance(tree, dict):
    return {k: _to_jnp(v) for k, v in tree.items()}
  return jnp.asarray(tree)


def _hf_attention(out: dict, prefix: str, a: Params, c: T5Config) -> None:
  inner = c.num_heads * c.d_kv
  for ours, s in (("query", "q"), ("key", "k"), ("value", "v")):
    out[f"{prefix}.{s}.weight"] = np.asarray(a[ours]).reshape(c.d_model, inner).T
  out[f"{prefix}.o.weight"] = np.asarray(a["out"]).reshape(inner, c.d_model).T


def export_hf_t5(config: T5Config, params: Params, path: str) -> None:
  """Writes config.json + model.safetensors that transformers' T5ForConditionalGeneration loads."""
  os.makedirs(path, exist_ok=True)
  t: dict[str, np.ndarray] = {"shared.weight": np.asarray(params["token_embedder"])}
  t["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = np.asarray(
      params["encoder_relpos"]["rel_embedding"])
  t["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = np.asarray(
      params["decoder_relpos"]["rel_embedding"])
  t["encoder.final_layer_norm.weight"] = np.asarray(params["encoder_norm"]["scale"])
  t["decoder.final_layer_norm.weight"] = np.asarray(params["decoder_norm"]["scale"])
  for i in range(config.num_encoder_layers):
    b, lp = f"encoder.block.{i}.layer", params[f"encoder_layer_{i}"]
    t[f"{b}.0.layer_norm.weight"] = np.asarray(lp["pre_attention_norm"]["scale"])
    _hf_attention(t, f"{b}.0.SelfAttention", lp["attention"], config)
    t[f"{b}.1.layer_norm.weight"] = np.asarray(lp["pre_mlp_norm"]["scale"])
    for n, w in lp["mlp"].items():
      t[f"{b}.1.DenseReluDense.{n}.weight"] = np.asarray(w).T
  for i in range(config.num_decoder_layers):
    b, lp = f"decoder.block.{i}.layer", params[f"decoder_layer_{i}"]
    t[f"{b}.0.layer_norm.weight"] = np.asarray(lp["pre_self_attention_norm"]["scale"])
    _hf_attention(t, f"{b}.0.SelfAttention", lp["self_attention"], config)
    t[f"{b}.1.layer_norm.weight"] = np.asarray(lp["pre_cross_attention_norm"]["scale"])
    _hf_attention(t, f"{b}.1.EncDecAttention", lp["cross_attention"], config)
    t[f"{b}.2.layer_norm.weight"] = np.asarray(lp["pre_mlp_norm"]["scale"])
    for n, w in lp["mlp"].items():
      t[f"{b}.2.DenseReluDense.{n}.weight"] = np.asarray(w).T
  if not config.tie_word_embeddings:
    t["lm_head.weight"] = np.asarray(params["logits_dense"]).T
  save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()},
            os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config_to_hf(config), f, indent=2)
