"""Runs one experiment as 1 process x (P*K) devices and as P processes x K devices, and prints them side by side.

    python tools/compare_process_layouts.py --num_processes=2 --devices_per_process=4 --out_dir=runs/layouts -- \
        --gin_file=experiments/sft_tiny.gin --gin_file=meshes/cpu_multiprocess.gin --gin.LoopSettings.num_steps=20

Both runs use the same global mesh shape and global batch, so every logged loss and every saved array must agree
up to float summation order. Prints, per logged step, the chosen metrics of both runs, then the largest
absolute difference over all logged numbers and over every array of the final checkpoint, and both wall times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Sequence

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))
_spec = importlib.util.spec_from_file_location("launch_local", os.path.join(_HERE, "launch_local.py"))
launch_local = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch_local)


def read_metrics(model_dir: str) -> dict[tuple[int, str], float]:
  """(step, name) -> value of every logged number in `model_dir`/metrics.jsonl except timings and throughputs
  (those differ between any two runs)."""
  out = {}
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      for k, v in record.items():
        if k not in ("step", "time") and not k.endswith(("_s", "per_s")):
          out[(record["step"], k)] = v
  return out


def max_state_difference(dir_a: str, dir_b: str, step: int | None = None) -> float:
  """Largest absolute difference over every array of two runs' checkpoints (the latest, or `step`); ValueError
  if they hold different trees."""
  import jax
  from mtpo_jax.checkpoints import load_arrays
  a = load_arrays(os.path.join(dir_a, "checkpoints"), step)
  b = load_arrays(os.path.join(dir_b, "checkpoints"), step)
  if jax.tree.structure(a) != jax.tree.structure(b):
    raise ValueError(f"{dir_a} and {dir_b} hold different state trees")
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def main(argv: Sequence[str] | None = None) -> int:
  parser, own, main_args = launch_local.layout_parser(sys.argv[1:] if argv is None else argv, __doc__)
  parser.add_argument("--out_dir", default="runs/process_layouts")
  parser.add_argument("--show", default="loss,policy_loss,value_loss,kl_to_reference,win_rate_vs_reference",
                      help="comma-separated metric names (without the train/ or eval/ prefix) to print per step")
  args = parser.parse_args(own)
  p, k = args.num_processes, args.devices_per_process
  layouts = [(1, p * k), (p, k)]
  dirs, walls = [], []
  for procs, devices in layouts:
    d = os.path.abspath(os.path.join(args.out_dir, f"{procs}x{devices}"))
    if os.path.exists(os.path.join(d, "metrics.jsonl")):
      print(f"{d} already holds a run; choose another --out_dir", file=sys.stderr)
      return 2
    t0 = time.time()
    status = launch_local.launch([*main_args, f"--gin.MODEL_DIR='{d}'"], procs, devices,
                                 os.path.join(d, "process_logs"), echo=False)
    walls.append(time.time() - t0)
    if status:
      return status
    dirs.append(d)
  a, b = read_metrics(dirs[0]), read_metrics(dirs[1])
  show = args.show.split(",")
  names = sorted({n for _, n in a if n.split("/", 1)[-1] in show})
  labels = [f"{procs} x {devices}" for procs, devices in layouts]
  print("| step | metric | " + " | ".join(labels) + " | abs diff |")
  print("|---|---|---|---|---|")
  for step in sorted({s for s, _ in a}):
    for n in names:
      if (step, n) in a and (step, n) in b:
        print(f"| {step} | {n} | {a[(step, n)]:.7g} | {b[(step, n)]:.7g} | {abs(a[(step, n)] - b[(step, n)]):.2g} |")
  common = set(a) & set(b)
  worst = max(abs(a[key] - b[key]) / max(1.0, abs(a[key])) for key in common)
  print(f"\nlogged numbers compared: {len(common)} (missing from one run: {len(set(a) ^ set(b))}); "
        f"largest difference (relative above 1): {worst:.3g}")
  print(f"largest absolute difference over every array of the final checkpoint: "
        f"{max_state_difference(dirs[0], dirs[1]):.3g}")
  print(f"wall time including start-up and compilation: {labels[0]}: {walls[0]:.1f} s, {labels[1]}: {walls[1]:.1f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
