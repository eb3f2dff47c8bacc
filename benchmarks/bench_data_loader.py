"""What the SeqIO data path costs (docs/data.md): the loader's examples/s beside what a train step consumes, and
what importing TensorFlow costs a process.

    python benchmarks/bench_data_loader.py                      # the default (tiny T5, 192/48, batch 24)
    python benchmarks/bench_data_loader.py --inputs_length=512 --targets_length=128 --batch_size=64 --no_step

Four figures, each printed with the settings it ran at:
  read       SeqIO reads and converts the pipeline's teacher-SFT task (education_sft_task over generated
             records), once per shard: examples/s from the generated records to numpy arrays; the part spent
             building the text examples (Python, before SeqIO) is printed apart.
  batch      TaskBatches.batch(i, rows): assembling a global batch from the arrays, examples/s.
  step       the jitted SFT train step of --gin_model on this machine's devices at the same shapes,
             examples/s (skipped with --no_step). At T5-large shapes the step runs on an accelerator; the
             benchmark prints the rate a step needs at a given MFU, computed as 6 * parameters * tokens FLOPs per
             example, not measured.
  process    start-up seconds and peak resident memory of a fresh Python process that imports the RL trainer
             (what decoding-only and RL stages import), with and without TensorFlow and SeqIO, and one that
             reads the task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _child(code: str) -> dict:
  """Wall seconds and peak resident memory (MiB) of `python -c code` in a fresh process."""
  # VmHWM, not getrusage: a child's ru_maxrss starts from its parent's resident size at fork.
  report = ("; print('PEAK', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
  t0 = time.perf_counter()
  out = subprocess.run([sys.executable, "-c", code + report], check=True, cwd=REPO, capture_output=True, text=True,
                       env={**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"})
  seconds = time.perf_counter() - t0
  peak_kib = int(next(line for line in out.stdout.splitlines() if line.startswith("PEAK")).split()[1])
  return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_kib / 1024, 1)}


def process_costs(records: int) -> dict:
  trainer = "import mtpo_jax.training.rl_trainer, mtpo_jax.evaluation.evaluate"
  read = (f"{trainer}; from mtpo_jax.data.task_data import TaskBatches, TaskFeed; "
          f"from mtpo_tasks.text_tasks import education_sft_task; "
          f"TaskBatches(TaskFeed(education_sft_task(num_train={records}, num_eval=8, max_input_tokens=191), "
          "{'inputs': 192, 'targets': 48}), 24).batch(0)")
  return {"trainer_without_tensorflow": _child(trainer + "; import sys; assert 'tensorflow' not in sys.modules"),
          "trainer_with_tensorflow_and_seqio": _child(trainer + "; import seqio, tensorflow"),
          "trainer_reading_the_task": _child(read)}


def main(argv=None) -> dict:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--records", type=int, default=2000, help="generated Education Dialogue train records")
  ap.add_argument("--inputs_length", type=int, default=192)
  ap.add_argument("--targets_length", type=int, default=48)
  ap.add_argument("--batch_size", type=int, default=24)
  ap.add_argument("--batches", type=int, default=200, help="batches assembled for the batch figure")
  ap.add_argument("--gin_model", default="models/t5_tiny.gin", help="model of the step figure")
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--no_step", action="store_true")
  ap.add_argument("--no_process", action="store_true")
  ap.add_argument("--mfu", type=float, default=0.45, help="MFU for the computed T5-large requirement")
  ap.add_argument("--peak_tflops", type=float, default=989.0, help="bf16 dense peak (H100: 989)")
  args = ap.parse_args(argv)
  import jax
  import numpy as np
  from mtpo_jax.data import education_examples, task_data
  from mtpo_jax.data.task_data import TaskBatches, TaskFeed
  from mtpo_tasks.text_tasks import education_sft_task

  out: dict = {"device": f"{jax.devices()[0].device_kind} x{jax.device_count()}, {os.cpu_count()} CPU cores",
               "records": args.records, "task_feature_lengths": [args.inputs_length, args.targets_length],
               "batch_size": args.batch_size}
  budget = args.inputs_length - 1
  t0 = time.perf_counter()
  examples = education_examples.sft_examples("teacher", "train", args.records, max_input_tokens=budget)
  build_s = time.perf_counter() - t0
  name = education_sft_task(num_train=args.records, num_eval=8, max_input_tokens=budget)
  lengths = {"inputs": args.inputs_length, "targets": args.targets_length}
  t0 = time.perf_counter()
  arrays = task_data.read_converted(name, "train", lengths)
  read_s = time.perf_counter() - t0
  n = len(arrays["encoder_input_tokens"])
  out["read"] = {"examples": n, "text_examples_per_s": round(len(examples) / build_s),
                 "seqio_examples_per_s": round(n / read_s),
                 "end_to_end_examples_per_s": round(n / (build_s + read_s)),
                 "array_mib": round(sum(a.nbytes for a in arrays.values()) / 2 ** 20, 1)}

  batches = TaskBatches(TaskFeed(name, lengths), args.batch_size, seed=0,
                        reader=lambda *a: arrays)
  batches.batch(0)
  t0 = time.perf_counter()
  for i in range(args.batches):
    batches.batch(i)
  out["batch"] = {"examples_per_s": round(args.batches * args.batch_size / (time.perf_counter() - t0))}

  if not args.no_step:
    out["step"] = _step_rate(args, batches)
  tokens = args.inputs_length + args.targets_length
  large_params = 783e6  # T5 v1.1 large (models/t5_1_1_large.gin), untied embeddings included
  need = args.mfu * args.peak_tflops * 1e12 / (6 * large_params * tokens)
  out["t5_large_step_needs"] = {"examples_per_s": round(need), "basis": f"{args.mfu:.0%} MFU of "
                                f"{args.peak_tflops:g} TFLOP/s, 6 x 783M parameters x {tokens} tokens (computed)"}
  if not args.no_process:
    out["process"] = process_costs(min(args.records, 200))
  print(json.dumps(out, indent=2))
  del np
  return out


def _step_rate(args, batches) -> dict:
  import functools
  import jax
  import optax
  from mtpo_jax import gin_registry, partitioning
  from mtpo_jax.models.config import T5Config
  from mtpo_jax.models.t5 import T5
  from mtpo_jax.training import sft
  from mtpo_jax.training.sft_trainer import build_train_state_fns
  import gin
  gin_registry.parse_config([args.gin_model], ["T5Config.vocab_size = 3072"])
  config = T5Config()
  model, tx = T5(config), optax.adafactor(1e-3)
  spec = partitioning.MeshSpec()
  partitioner = partitioning.Partitioner(partitioning.make_mesh(spec), spec.rules)
  init_fn, specs = build_train_state_fns(model, tx, args.inputs_length, args.targets_length, 0)
  with partitioner.context():
    abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
  state_sh = partitioner.state_shardings(abstract, specs)
  state = partitioner.init_sharded(init_fn, jax.random.PRNGKey(0), state_sh)
  put = lambda b: partitioner.put_process_batch(b, args.batch_size)
  first = put(batches.batch(0))
  step = partitioner.jit(functools.partial(sft.sft_train_step, model=model, tx=tx, schedule=lambda s: 1e-3),
                         in_shardings=(state_sh, partitioner.batch_shardings(batches.batch(0))),
                         out_shardings=(state_sh, partitioner.replicated), donate_argnums=0)
  state, m = step(state, first)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for i in range(args.steps):
    state, m = step(state, put(batches.batch(i + 1)))
  jax.block_until_ready(m)
  gin.clear_config()
  return {"model": args.gin_model, "examples_per_s": round(args.steps * args.batch_size / (time.perf_counter() - t0))}


if __name__ == "__main__":
  main()
