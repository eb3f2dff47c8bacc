"""Decode throughput: the jitted KV-cache sampler vs full recomputation of the decoder at every step.

    python benchmarks/bench_decode.py --gin_model=gin/models/t5_tiny.gin --batch=16 --input_length=64 --new_tokens=64

Greedy decoding with EOS disabled (every row generates exactly --new_tokens), so both paths do the same work
and produce the same tokens (checked). Prints the device, the configuration, ms per call and new tokens/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax import gin_registry
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import SamplingConfig, greedy_full_recompute, sample
from mtpo_jax.models.t5 import T5


def _time(fn, repeats: int) -> tuple[float, object]:
  out = jax.block_until_ready(fn())  # compile + warm up
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--gin_model", default="gin/models/t5_tiny.gin")
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--input_length", type=int, default=64)
  ap.add_argument("--new_tokens", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--skip_recompute", action="store_true", help="only time the KV-cache sampler")
  args = ap.parse_args()

  gin_registry.register()
  gin.parse_config_file(args.gin_model)
  config = gin.get_configurable("T5Config")()
  # EOS can never be produced: every row decodes all new tokens in both paths.
  config = config.replace(eos_token_id=config.vocab_size + 1)
  model = T5(config)
  rng = np.random.RandomState(0)
  ids = jnp.asarray(rng.randint(3, config.vocab_size, (args.batch, args.input_length)), jnp.int32)
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), ids[:1, :4], ids[:1, :4])["params"])
  cfg = SamplingConfig(max_new_tokens=args.new_tokens, greedy=True)
  cached = jax.jit(lambda p, x: sample(model, p, x, jax.random.PRNGKey(0), cfg).tokens)
  full = jax.jit(lambda p, x: greedy_full_recompute(model, p, x, args.new_tokens))

  new_tokens = args.batch * args.new_tokens
  print(f"device: {jax.devices()[0].device_kind} ({jax.device_count()} x {jax.default_backend()}), jax {jax.__version__}")
  print(f"model: d_model={config.d_model} layers={config.num_encoder_layers}+{config.num_decoder_layers} "
        f"heads={config.num_heads} d_ff={config.d_ff} vocab={config.vocab_size} dtype={jnp.dtype(config.dtype).name}")
  print(f"batch={args.batch} input_length={args.input_length} new_tokens={args.new_tokens} repeats={args.repeats}")
  t_cache, tok_cache = _time(lambda: cached(params, ids), args.repeats)
  print(f"kv-cache sampler:     {t_cache * 1e3:9.1f} ms/call  {new_tokens / t_cache:12,.0f} new tok/s")
  if not args.skip_recompute:
    t_full, tok_full = _time(lambda: full(params, ids), args.repeats)
    same = bool(np.array_equal(np.asarray(tok_cache), np.asarray(tok_full)))
    print(f"full recompute:       {t_full * 1e3:9.1f} ms/call  {new_tokens / t_full:12,.0f} new tok/s")
    print(f"speed-up (cache/full): {t_full / t_cache:.2f}x   identical tokens: {same}")


if __name__ == "__main__":
  main()
