"""Decode throughput of the jitted KV-cache sampler, against full recomputation and Hugging Face `generate`.

    python benchmarks/bench_decode.py --gin_model=gin/models/t5_tiny.gin --batch=16 --input_length=64 --new_tokens=64
    python benchmarks/bench_decode.py --hf ...   # also time transformers' PyTorch generate on identical weights

EOS is made unreachable so every row generates exactly --new_tokens in every implementation (same work).
Greedy outputs are compared token for token. With --hf, random weights are built in transformers, saved as
safetensors and loaded into our model with `load_hf_t5`, so both run the very same parameters.
Prints the device, the configuration, ms per call, new tokens/s and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax import gin_registry
from mtpo_jax.models.decoding import SamplingConfig, greedy_full_recompute, sample
from mtpo_jax.models.t5 import T5


def _median_time(fn, repeats: int):
  out = fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def _hf_model_and_ours(config, dtype):
  import torch
  import transformers
  from mtpo_jax.models.hf_import import config_to_hf, load_hf_t5
  torch.manual_seed(0)
  hf_cfg = transformers.T5Config(**{k: v for k, v in config_to_hf(config).items() if k != "architectures"})
  hf = transformers.T5ForConditionalGeneration(hf_cfg).eval()
  path = tempfile.mkdtemp()
  hf.save_pretrained(path)
  model, params = load_hf_t5(path, dtype=dtype)
  return hf, T5(model.config.replace(eos_token_id=config.eos_token_id)), params


def decode_bound_tokens_per_s(config, params, batch: int, input_length: int, new_tokens: int,
                              hbm_gbps: float | None) -> float | None:
  """Upper bound on new tokens/s of a memory-bound decoder: each step must read every decoder-side parameter
  (the whole model, as stored) and the KV cache (self-attention at its mean filled length, cross-attention over
  the input), so steps/s <= bandwidth / bytes per step and tokens/s = batch x that. None without a bandwidth."""
  from mtpo_jax.aot.hardware import chip_for
  if hbm_gbps is None:
    chip = chip_for(jax.devices()[0].device_kind)
    if chip is None:
      return None
    hbm_gbps = chip.hbm_gbps / chip.devices_per_chip
  param_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(params))
  kv = 2 * config.num_decoder_layers * config.num_heads * config.d_kv * jnp.dtype(config.dtype).itemsize
  cache_bytes = batch * kv * (input_length + new_tokens / 2)
  return batch * hbm_gbps * 1e9 / (param_bytes + cache_bytes)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--gin_model", default="gin/models/t5_tiny.gin")
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--input_length", type=int, default=64)
  ap.add_argument("--new_tokens", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--skip_recompute", action="store_true", help="do not time full recomputation")
  ap.add_argument("--hf", action="store_true", help="also time Hugging Face transformers generate (PyTorch)")
  ap.add_argument("--hbm_gbps", type=float, default=None,
                  help="memory bandwidth for the bound (default: the device's, mtpo_jax/aot/hardware.py)")
  args = ap.parse_args()

  gin_registry.register()
  gin.parse_config_file(args.gin_model)
  config = gin.get_configurable("T5Config")().replace(dropout_rate=0.0)
  config = config.replace(eos_token_id=config.vocab_size + 1)  # unreachable: fixed-length decoding everywhere
  ids_np = np.random.RandomState(0).randint(3, config.vocab_size, (args.batch, args.input_length)).astype(np.int32)
  ids = jnp.asarray(ids_np)
  if args.hf:
    hf, model, params = _hf_model_and_ours(config, config.dtype)
  else:
    model = T5(config)
    params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), ids[:1, :4], ids[:1, :4])["params"])

  def ours(greedy):
    cfg = SamplingConfig(max_new_tokens=args.new_tokens, greedy=greedy, temperature=1.0)
    fn = jax.jit(lambda p, x, r: sample(model, p, x, r, cfg).tokens)
    return lambda: np.asarray(jax.block_until_ready(fn(params, ids, jax.random.PRNGKey(1))))

  n = args.batch * args.new_tokens
  print(f"device: {jax.devices()[0].device_kind} ({jax.device_count()} x {jax.default_backend()}), "
        f"jax {jax.__version__}, {os.cpu_count()} CPUs")
  print(f"model: d_model={config.d_model} layers={config.num_encoder_layers}+{config.num_decoder_layers} "
        f"heads={config.num_heads} d_ff={config.d_ff} vocab={config.vocab_size} dtype={jnp.dtype(config.dtype).name}")
  print(f"batch={args.batch} input_length={args.input_length} new_tokens={args.new_tokens} "
        f"repeats={args.repeats} (median)")
  results = {}
  results["ours greedy"], tok_greedy = _median_time(ours(True), args.repeats)
  results["ours sampled"], _ = _median_time(ours(False), args.repeats)
  if not args.skip_recompute:
    full = jax.jit(lambda p, x: greedy_full_recompute(model, p, x, args.new_tokens))
    results["full recompute greedy"], tok_full = _median_time(
        lambda: np.asarray(jax.block_until_ready(full(params, ids))), args.repeats)
    print(f"full recompute == kv cache tokens: {np.array_equal(tok_full, tok_greedy)}")
  if args.hf:
    import torch
    x = torch.tensor(ids_np, dtype=torch.long)
    kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, eos_token_id=None,
              pad_token_id=config.pad_token_id, decoder_start_token_id=config.decoder_start_token_id)

    def hf_generate(do_sample):
      def run():
        with torch.inference_mode():
          return hf.generate(input_ids=x, attention_mask=torch.ones_like(x), do_sample=do_sample,
                             top_k=0 if do_sample else None, **kw)[:, 1:].numpy()
      return run

    results["hf greedy"], tok_hf = _median_time(hf_generate(False), args.repeats)
    results["hf sampled"], _ = _median_time(hf_generate(True), args.repeats)
    agree = float((tok_hf == tok_greedy).mean())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; greedy token agreement with HF: {agree:.3f}")
  for name, t in results.items():
    print(f"{name:24s} {t * 1e3:9.1f} ms/call {n / t:12,.0f} new tok/s")
  bound = decode_bound_tokens_per_s(config, params, args.batch, args.input_length, args.new_tokens,
                                    args.hbm_gbps)
  if bound:
    print(f"HBM-bandwidth bound: {bound:12,.0f} new tok/s (every decode step reads all parameters and the KV "
          f"cache once); ours sampled reaches {n / results['ours sampled'] / bound:.1%} of it")
  if "full recompute greedy" in results:
    print(f"ratio kv-cache / full recompute (greedy): {results['full recompute greedy'] / results['ours greedy']:.2f}x")
  if args.hf:
    print(f"ratio ours / HF generate: greedy {results['hf greedy'] / results['ours greedy']:.2f}x, "
          f"sampled {results['hf sampled'] / results['ours sampled']:.2f}x")


if __name__ == "__main__":
  main()
