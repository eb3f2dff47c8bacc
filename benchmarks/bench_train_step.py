"""SFT train-step throughput and model-FLOPs utilisation (MFU) of the sharded, jitted step of training/sft.py.

    python benchmarks/bench_train_step.py --gin_model=models/t5_tiny.gin --batch=32 --input_length=256 --target_length=64
    python benchmarks/bench_train_step.py --gin_model=models/t5_1_1_large.gin --mesh=meshes/gpu_1.gin --batch=64 \\
        --input_length=512 --target_length=128          # on a GPU: MFU against its bf16 dense peak

FLOPs per step come from XLA's cost analysis of the compiled step (forward, backward and optimizer, all
devices), and also from the 6 x parameters x tokens rule for comparison. MFU = achieved FLOP/s / (peak FLOP/s x
devices); the peak is looked up by device kind in mtpo_jax/aot/hardware.py (H100/H200: 989 TFLOP/s bf16 dense) or
given by --peak_tflops.
Random token batches; the first --warmup steps are not timed. Prints the device, configuration and figures,
and the compiled step's memory report (argument, output and temporary bytes per device). --batch takes a
comma-separated list for a scaling sweep (one compile per batch size), e.g. with --mesh=meshes/cpu_fake8.gin
(8 fake CPU devices; set XLA_FLAGS=--xla_force_host_platform_device_count=8) to see per-device memory shrink.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import gin
import jax
import numpy as np

from mtpo_jax import gin_registry
from mtpo_jax import partitioning
from mtpo_jax.aot import hardware
from mtpo_jax.data.batches import make_enc_dec_batch
from mtpo_jax.models.t5 import T5
from mtpo_jax.training import optimizers, sft
from mtpo_jax.training.sft_trainer import build_train_state_fns

def peak_tflops(device: jax.Device, given: float | None) -> float | None:
  """Per-device bf16 dense peak: `given`, else the chip table's (mtpo_jax/aot/hardware.py) for its kind."""
  if given:
    return given
  chip = hardware.chip_for(getattr(device, "device_kind", ""))
  return chip.device_peak_flops / 1e12 if chip else None


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--gin_model", default="models/t5_tiny.gin")
  ap.add_argument("--gin", action="append", default=["T5Config.vocab_size = 3072"], help="extra Gin binding")
  ap.add_argument("--mesh", default="meshes/cpu.gin")
  ap.add_argument("--batch", default="32", help="batch size, or a comma-separated list for a sweep")
  ap.add_argument("--input_length", type=int, default=256)
  ap.add_argument("--target_length", type=int, default=64)
  ap.add_argument("--steps", type=int, default=10)
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--peak_tflops", type=float, default=None, help="per-device peak (default: by device kind)")
  args = ap.parse_args()

  gin_registry.parse_config([args.gin_model, args.mesh], args.gin)
  config = gin.get_configurable("T5Config")()
  spec = gin.get_configurable("MeshSpec")()
  partitioner = partitioning.Partitioner(partitioning.make_mesh(spec), spec.rules)
  model = T5(config)
  tx, schedule = optimizers.make_optimizer("adafactor", 1e-3)
  init_fn, specs = build_train_state_fns(model, tx, args.input_length, args.target_length, 0)
  state, _ = partitioner.init_state(init_fn, jax.random.PRNGKey(0), specs)
  with partitioner.context():
    state_sh = partitioner.state_shardings(jax.eval_shape(init_fn, jax.random.PRNGKey(0)), specs)
  dev = jax.devices()[0]
  n_dev = len(partitioner.mesh.devices.flat)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  print(f"device: {n_dev} x {getattr(dev, 'device_kind', dev.platform)} ({dev.platform}); "
        f"mesh {dict(partitioner.mesh.shape)}")
  print(f"model: {args.gin_model} ({n_params / 1e6:.1f} M params, dtype {config.dtype}); "
        f"{args.input_length} in + {args.target_length} out tokens per example")
  peak = peak_tflops(dev, args.peak_tflops)
  for batch_size in [int(b) for b in str(args.batch).split(",")]:
    state = time_batch(args, batch_size, config, partitioner, model, tx, schedule, state, state_sh, n_params,
                       n_dev, peak)


def time_batch(args, batch_size, config, partitioner, model, tx, schedule, state, state_sh, n_params, n_dev, peak):
  rng = np.random.default_rng(0)
  ids = lambda n: rng.integers(3, config.vocab_size, size=(batch_size, n)).astype(np.int32)
  batch = make_enc_dec_batch(ids(args.input_length), ids(args.target_length))
  batch_sh = partitioner.batch_shardings(batch)
  step = partitioner.jit(functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=schedule),
                         in_shardings=(state_sh, batch_sh), out_shardings=(state_sh, partitioner.replicated),
                         donate_argnums=0)
  t0 = time.time()
  compiled = step.lower(state, partitioner.put_batch(batch)).compile()
  compile_s = time.time() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  mem = compiled.memory_analysis()
  tokens = batch_size * (args.input_length + args.target_length)
  rule_flops = 6.0 * n_params * tokens
  device_batch = partitioner.put_batch(batch)
  times = []
  for i in range(args.warmup + args.steps):
    t = time.perf_counter()
    state, metrics = compiled(state, device_batch)
    jax.block_until_ready(metrics)
    if i >= args.warmup:
      times.append(time.perf_counter() - t)
  sec = statistics.median(times)
  print(f"batch {batch_size}: {tokens} tokens/step, compile {compile_s:.1f} s; step median {sec * 1e3:.1f} ms "
        f"over {args.steps} (min {min(times) * 1e3:.1f}); {tokens / sec:,.0f} tokens/s; {1 / sec:.2f} steps/s")
  if mem is not None:
    print(f"  memory per device: arguments {mem.argument_size_in_bytes / 2**20:.1f} MiB, outputs "
          f"{mem.output_size_in_bytes / 2**20:.1f} MiB, temporaries {mem.temp_size_in_bytes / 2**20:.1f} MiB")
  print(f"  FLOPs/step: XLA cost analysis {xla_flops / 1e12:.3f} T; 6 x params x tokens {rule_flops / 1e12:.3f} T; "
        f"achieved {xla_flops / sec / 1e12:.2f} TFLOP/s")
  if peak:
    print(f"  MFU: {xla_flops / sec / (peak * 1e12 * n_dev):.1%} of {peak:.0f} TFLOP/s x {n_dev} (XLA FLOPs); "
          f"{rule_flops / sec / (peak * 1e12 * n_dev):.1%} (6ND rule)")
  else:
    print("  MFU: no bf16 peak known for this device (pass --peak_tflops)")
  return state


if __name__ == "__main__":
  main()
