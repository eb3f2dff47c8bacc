"""Our T5 reproduces Hugging Face transformers' PyTorch T5 logits from the same safetensors files."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mtpo_jax.models import export_hf_t5, load_hf_t5  # noqa: E402  (the public names)
from mtpo_jax.models.hf_import import HFCheckpointError  # noqa: E402

LAYOUTS = {"t5_relu_tied": ("relu", True), "t5_1_1_gated_gelu_untied": ("gated-gelu", False)}


def _hf_model(tmp_path, proj, tie, seed=0):
  torch.manual_seed(seed)
  cfg = transformers.T5Config(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_heads=4, num_layers=2,
                              num_decoder_layers=3, feed_forward_proj=proj, tie_word_embeddings=tie,
                              dropout_rate=0.0, relative_attention_num_buckets=8,
                              relative_attention_max_distance=20)
  model = transformers.T5ForConditionalGeneration(cfg).eval()
  if not tie:  # make the head differ from the embedding so an untied head is really exercised
    with torch.no_grad():
      model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.05)
  path = str(tmp_path / "hf")
  model.save_pretrained(path)
  return model, path


def _inputs():
  rs = np.random.RandomState(0)
  ids = rs.randint(2, 300, (3, 40))
  mask = np.ones_like(ids)
  ids[1, 30:], mask[1, 30:] = 0, 0  # right padding: bias masking must match
  dec = rs.randint(2, 300, (3, 35))  # > max_distance, so the log-spaced buckets are used
  return ids, mask, dec


def _torch_logits(model, ids, mask, dec):
  with torch.no_grad():
    return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                 decoder_input_ids=torch.tensor(dec)).logits.numpy()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_logits_match_transformers(tmp_path, layout):
  hf, path = _hf_model(tmp_path, *LAYOUTS[layout])
  model, params = load_hf_t5(path)
  ids, mask, dec = _inputs()
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids), jnp.asarray(dec),
                                attention_mask=jnp.asarray(mask)))
  ref = _torch_logits(hf, ids, mask, dec)
  assert ours.dtype == np.float32 and ours.shape == ref.shape == (3, 35, 300)
  err = np.abs(ours - ref).max()
  print(f"{layout}: max abs logit error {err:.2e} (logit scale {np.abs(ref).max():.1f})")
  assert err <= 1e-4


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_export_loads_in_transformers(tmp_path, layout):
  _, path = _hf_model(tmp_path, *LAYOUTS[layout], seed=1)
  model, params = load_hf_t5(path)
  out = str(tmp_path / "exported")
  export_hf_t5(model.config, params, out)
  reloaded = transformers.T5ForConditionalGeneration.from_pretrained(out).eval()
  ids, mask, dec = _inputs()
  ours = np.asarray(model.apply({"params": params}, jnp.asarray(ids), jnp.asarray(dec),
                                attention_mask=jnp.asarray(mask)))
  assert np.abs(ours - _torch_logits(reloaded, ids, mask, dec)).max() <= 1e-4


def test_bad_checkpoint_directories_name_the_problem(tmp_path):
  with pytest.raises(HFCheckpointError, match="not a directory"):
    load_hf_t5(str(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(HFCheckpointError, match="no config.json"):
    load_hf_t5(str(tmp_path / "empty"))
  _, path = _hf_model(tmp_path, "relu", True)
  with open(os.path.join(path, "config.json")) as f:
    cfg = json.load(f)
  cfg["num_layers"] = 1  # the file holds 2 encoder blocks: they must not be silently dropped
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(cfg, f)
  with pytest.raises(HFCheckpointError, match="not mapped"):
    load_hf_t5(path)
