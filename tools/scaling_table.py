"""docs/scaling.md's table: does T5 v1.1 MTPO fit each slice, at what per-chip memory and roofline step time.

    python tools/scaling_table.py                       # every cell not in the cache, then the table
    python tools/scaling_table.py --models=large --slices=v5e-16 --scales=1
    python tools/scaling_table.py --table_only          # rewrite docs/scaling.md from the cache

Each cell compiles the MTPO actor-critic step (rl/actor_critic.py: policy and critic updated, mu read) with
tools/aot_compile.py in its own process, at the paper's batch (16 contexts x 2 conversations x 10 turns, 512
input and 64 turn tokens, 64-row microbatches; runs/mtpo.gin) times each --scales factor, on the mesh
`recommended_mesh` picks, under a host-memory cap and a timeout (a TPU compile near the HBM limit can take more
host memory than a laptop has: that cell then says so instead of killing the machine).

Depth probes. The T5 layers are unrolled, so a full-depth compile of the actor-critic step (five passes over 48
layers) takes the TPU compiler tens of minutes on 2 cores. With --depth_probes=2,4 (the default) each cell is
compiled at 2 and at 4 encoder + decoder layers with the real widths, and every figure (per-device argument,
temporary and peak bytes, FLOPs, bytes accessed) is extrapolated linearly to the model's 24 + 24 layers:
parameters, optimizer state, per-layer activations and per-layer FLOPs are each a constant plus a per-layer
term. `--depth_probes=full` compiles the real depth instead; the table says which each cell is, and
docs/scaling.md checks the extrapolation against a full compile. A probe the compiler refuses for lack of HBM
settles the cell: a deeper model needs more.

Results are cached in benchmarks/results/scaling_cells.json keyed by (model, slice, scale, remat, probes), each
with the commit it was compiled at, so a rerun compiles only what is missing. TPU columns need libtpu (the tpu
extra); H100 columns are always CPU stand-ins (no CUDA compiler runs without a GPU), marked so in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, "benchmarks", "results", "scaling_cells.json")
MODELS = ("small", "base", "large", "xl", "xxl")
SLICES = ("v5e-16", "v5e-256", "v4-32", "v5p-128", "h100x1", "h100x8")
PAPER = ["ConversationSettings.input_length=512", "ConversationSettings.max_turn_tokens=64",
         "ConversationSettings.max_agent_turns=10", "LoopSettings.batch_size=16",
         "ActorCriticHParams.microbatch_rows=64"]
PAPER_STEPS_PER_S = 0.1  # the paper's T5-large MTPO on 16 TPU chips (digest A12)


def recommended_mesh(slice_name: str) -> dict[str, int]:
  """FSDP over every device: parameters, both optimizer states and mu are split 1/N per chip, and the batch
  too (T5 v1.1 up to XXL has no layer wide enough to need tensor parallelism at these batch sizes)."""
  return {"data": 1, "fsdp": -1, "model": 1}


def cell_key(model: str, slice_name: str, scale: float, remat: str, probes: str) -> str:
  return f"{model}|{slice_name}|x{scale:g}|{remat}|{probes}"


def compile_cell(model: str, slice_name: str, scale: float, remat: str, timeout: int, mem_gib: float,
                 layers: int | None = None) -> dict:
  """One compile in its own process; `layers` overrides the encoder and decoder depth (a depth probe)."""
  mesh = recommended_mesh(slice_name)
  out = os.path.join("/tmp", f"scaling_{model}_{slice_name}_{scale:g}_{remat}_{layers or 'full'}.json")
  cmd = [sys.executable, os.path.join(REPO, "tools", "aot_compile.py"), "--gin_file=runs/mtpo.gin",
         f"--gin_file=models/t5_1_1_{model}.gin", f"--slice={slice_name}", "--steps=actor_critic",
         f"--batch_scale={scale}", f"--json={out}", "--gin.MODEL_DIR='unused'",
         f"--gin.T5Config.remat_policy='{remat}'"] + [f"--gin.MeshSpec.{k}={v}" for k, v in mesh.items()]
  cmd += [f"--gin.{b}" for b in PAPER]
  if layers is not None:
    cmd += [f"--gin.T5Config.num_encoder_layers={layers}", f"--gin.T5Config.num_decoder_layers={layers}"]

  def cap():
    limit = int(mem_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

  t0 = time.time()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=cap, cwd=REPO)
  except subprocess.TimeoutExpired:
    return {"status": f"compile exceeded {timeout} s", "wall_s": time.time() - t0}
  if proc.returncode != 0:
    tail = [line for line in proc.stderr.splitlines() if line.startswith("aot_compile: error")]
    oom = "MemoryError" in proc.stderr or "std::bad_alloc" in proc.stderr or proc.returncode < 0
    return {"status": "compile exceeded host memory" if oom else (tail[-1] if tail else f"exit {proc.returncode}"),
            "wall_s": time.time() - t0}
  data = json.load(open(out))
  return {"status": "ok", "wall_s": time.time() - t0, **data["reports"][0], "shapes": data["shapes"],
          "commit": _commit()}


def _commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


EXTRAPOLATED = ("peak_bytes", "flops", "bytes_accessed")
MEMORY_EXTRAPOLATED = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
                       "temp_size_in_bytes", "generated_code_size_in_bytes")


def extrapolate(probes: dict[int, dict], depth: int, slice_name: str) -> dict:
  """A full-depth report from probe reports at two depths: each figure f(L) = a + b L through the two points,
  evaluated at `depth`; fit and roofline recomputed from the extrapolated figures."""
  from mtpo_jax.aot.hardware import roofline
  from mtpo_jax.aot.topology import slice_spec
  chip = slice_spec(slice_name)[0]
  (l0, r0), (l1, r1) = sorted(probes.items())
  line = lambda y0, y1: y0 + (y1 - y0) * (depth - l0) / (l1 - l0)
  out = {k: v for k, v in r1.items() if k not in EXTRAPOLATED + ("memory", "wall_s")}
  for k in EXTRAPOLATED:
    out[k] = line(r0[k], r1[k])
  out["memory"] = {k: line(r0["memory"][k], r1["memory"][k]) for k in MEMORY_EXTRAPOLATED}
  out["fits"] = out["peak_bytes"] <= chip.device_hbm_bytes
  bound = roofline(out["flops"], out["bytes_accessed"], chip)
  out.update(roofline_s=bound.step_s, bound=bound.bound, mfu_bound=bound.mfu_bound, status="ok",
             method=f"extrapolated from {l0}- and {l1}-layer compiles", probe_layers=[l0, l1],
             wall_s=r0["wall_s"] + r1["wall_s"], params=None)
  return out


MODEL_DEPTH = {"small": 8, "base": 12, "large": 24, "xl": 24, "xxl": 24}


def run_cell(model: str, slice_name: str, scale: float, remat: str, timeout: int, mem_gib: float,
             probes: str) -> dict:
  if probes == "full":
    cell = compile_cell(model, slice_name, scale, remat, timeout, mem_gib)
    cell["method"] = "full-depth compile"
    return cell
  results = {}
  for layers in (int(p) for p in probes.split(",")):
    r = compile_cell(model, slice_name, scale, remat, timeout, mem_gib, layers)
    if r.get("status") != "ok" or r.get("error"):  # refused or failed: the deeper model is no better
      r["method"] = f"{layers}-layer probe"
      return r
    results[layers] = r
  return extrapolate(results, MODEL_DEPTH[model], slice_name)


def format_table(cells: dict) -> str:
  gib = lambda b: f"{b / 2**30:.1f}"
  rows = ["| model | slice | batch | compiler | mesh (data x fsdp x model) | fits | per-chip GiB (of HBM) | "
          "update roofline | update steps/s (x the paper's 0.1 iterations/s) | MFU bound | how | commit |", "|" + "---|" * 12]
  notes = []
  for key in sorted(cells, key=lambda k: (MODELS.index(k.split("|")[0]), SLICES.index(k.split("|")[1])
                                          if k.split("|")[1] in SLICES else 99, k)):
    model, slice_name, scale, remat, _ = key.split("|")
    c = cells[key]
    how, commit = c.get("method", "-"), c.get("commit", "-")
    batch = f"{scale} ({int(16 * float(scale[1:]))} contexts)" + ("" if remat == "none" else f", remat {remat}")
    if c.get("status") != "ok":
      rows.append(f"| {model} | {slice_name} | {batch} | - | - | {c.get('status')} | - | - | - | - | {how} | "
                  f"{commit} |")
      continue
    m = c["mesh"]
    mesh = f"{m['data']} x {m['fsdp']} x {m['model']}"
    if c.get("error"):
      rows.append(f"| {model} | {slice_name} | {batch} | {c['compiler']} | {mesh} | **no**: {c['error'][:160]} "
                  f"| - | - | - | - | {how} | {commit} |")
      continue
    steps_s = 1.0 / c["roofline_s"]
    rows.append(f"| {model} | {slice_name} | {batch} | {c['compiler']} | {mesh} | {'yes' if c['fits'] else '**no**'} "
                f"| {gib(c['peak_bytes'])} ({gib(c['hbm_bytes'])}) | {c['roofline_s'] * 1e3:,.0f} ms "
                f"({c['bound']}) | {steps_s:.2f}/s = {steps_s / PAPER_STEPS_PER_S:.1f}x | {c['mfu_bound']:.0%} | {how} "
                f"| {commit} |")
  for key in sorted(cells):
    if advice(cells[key]):
      notes.append(f"- {key.split('|')[0]} on {key.split('|')[1]} at {key.split('|')[2]}: {advice(cells[key])}.")
  return "\n".join(rows + ([""] + notes if notes else []))


def advice(c: dict) -> str:
  """What would make a cell fit, from where its bytes go."""
  if c.get("status") != "ok":
    return ""
  if c.get("error"):
    return "the compiler refused it for HBM: more chips (fsdp), T5Config.remat_policy='full', or a smaller batch"
  if c["fits"]:
    return ""
  m, hbm = c["memory"], c["hbm_bytes"]
  state = m["argument_size_in_bytes"]
  if state > 0.8 * hbm:
    n = c["mesh"]["data"] * c["mesh"]["fsdp"] * c["mesh"]["model"]
    need = int(-(-state * n // (0.5 * hbm)))
    return (f"parameters, optimizer state and mu alone take {state / 2**30:.1f} GiB per chip: shard over about "
            f"{need} devices (more fsdp) or keep them in bf16")
  return (f"temporaries take {m['temp_size_in_bytes'] / 2**30:.1f} GiB: T5Config.remat_policy='full' or smaller "
          "microbatches (ActorCriticHParams.microbatch_rows)")


def largest_fitting(cells: dict) -> str:
  lines = []
  for slice_name in SLICES:
    fit = [(k.split("|")[0], k.split("|")[3]) for k, c in cells.items() if k.split("|")[1] == slice_name
           and k.split("|")[2] == "x1" and c.get("status") == "ok" and not c.get("error") and c.get("fits")]
    tried = {k.split("|")[0] for k in cells if k.split("|")[1] == slice_name and k.split("|")[2] == "x1"}
    if tried:
      # the largest model; without rematerialisation if it fits so
      model, remat = min(fit, key=lambda f: (-MODELS.index(f[0]), f[1] != "none")) if fit else ("none", "none")
      best = model + ("" if remat == "none" else f" (with remat_policy '{remat}')")
      lines.append(f"- {slice_name}: {best} (of {', '.join(m for m in MODELS if m in tried)} compiled)")
  return "\n".join(lines)


START, END = "<!-- scaling-table:start -->", "<!-- scaling-table:end -->"


def write_docs(cells: dict, path: str) -> None:
  text = open(path).read()
  if START not in text or END not in text:
    raise ValueError(f"{path} has no {START} ... {END} block to replace")
  block = (f"{START}\n{format_table(cells)}\n\nThe largest model whose MTPO step fits, at the paper's batch:\n"
           f"{largest_fitting(cells)}\n{END}")
  head, rest = text.split(START, 1)
  with open(path, "w") as f:
    f.write(head + block + rest.split(END, 1)[1])


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--models", default=",".join(MODELS))
  ap.add_argument("--slices", default=",".join(SLICES))
  ap.add_argument("--scales", default="1,4", help="batch multiples of the paper's 16 contexts")
  ap.add_argument("--remat", default="none")
  ap.add_argument("--timeout", type=int, default=1800, help="seconds per compile")
  ap.add_argument("--host_memory_gib", type=float, default=20.0, help="address-space cap per compile")
  ap.add_argument("--depth_probes", default="2,4", help="two layer counts to extrapolate from, or 'full'")
  ap.add_argument("--table_only", action="store_true")
  ap.add_argument("--write_docs", default=None, help="replace the table block of this file (docs/scaling.md)")
  ap.add_argument("--cache", default=CACHE)
  args = ap.parse_args(argv)
  cells = json.load(open(args.cache)) if os.path.exists(args.cache) else {}
  if not args.table_only:
    for model in args.models.split(","):
      for slice_name in args.slices.split(","):
        for scale in (float(s) for s in args.scales.split(",")):
          key = cell_key(model, slice_name, scale, args.remat, args.depth_probes)
          if key in cells:
            continue
          print(f"compiling {key} ...", flush=True)
          cells[key] = run_cell(model, slice_name, scale, args.remat, args.timeout, args.host_memory_gib,
                                args.depth_probes)
          print(f"  {cells[key].get('status')} in {cells[key]['wall_s']:.0f} s", flush=True)
          os.makedirs(os.path.dirname(args.cache), exist_ok=True)
          with open(args.cache, "w") as f:
            json.dump(cells, f, indent=1, sort_keys=True)
  print(format_table(cells))
  if args.write_docs:
    write_docs(cells, args.write_docs)
  return 0


if __name__ == "__main__":
  sys.exit(main())
