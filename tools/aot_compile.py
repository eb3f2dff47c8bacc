"""Compile every step a configured experiment runs for a named TPU slice or GPU host, without running any.

    python tools/aot_compile.py --gin_file=experiments/mtpo_tiny.gin --gin_file=meshes/tpu_v5e_16.gin
    python tools/aot_compile.py --gin_file=experiments/mtpo_tiny.gin --gin_file=models/t5_1_1_large.gin \\
        --gin_file=meshes/tpu_v5e_16.gin --json=/tmp/large_v5e16.json
    python tools/aot_compile.py --gin_file=experiments/sft_tiny.gin --slice=h100x8 --gin.MeshSpec.fsdp=-1 \\
        --gin.MeshSpec.data=1

The same Gin files as a training run: the model (T5Config), the mesh (MeshSpec; a meshes/tpu_*.gin file also
names its slice as SLICE, or pass --slice) and the experiment's shapes (ConversationSettings, LoopSettings,
ActorCriticHParams, the SFT and scorer feature lengths). The job bound to `run.job` decides which steps compile
(`JOB_STEPS`; --steps overrides). Nothing is allocated: every argument is a jax.ShapeDtypeStruct with its
sharding (mtpo_jax/aot/steps.py).

With libtpu installed (pip install -e '.[tpu]') a TPU slice is compiled by the TPU compiler for the real
topology; without it, and always for GPU hosts, CPU devices of the same count stand in and every line says
"cpu stand-in" (the memory and FLOP figures are then the CPU compiler's estimates, not the accelerator's).
For each step it prints and (--json) writes per-device argument / output / temporary / code bytes, whether the
step fits the device's HBM, FLOPs and bytes accessed, the roofline step time on the slice's chips and the MFU
that bound allows (mtpo_jax/aot/hardware.py holds the peak figures, cited).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if "--native" not in sys.argv:  # compile only: never start an accelerator runtime (libtpu's included)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

JOB_STEPS = {
    "train_sft": ("sft",),
    "train_scorer": ("scorer",),
    "train_rl": ("actor_critic", "prefill", "decode"),
    "train_iterative_ppo": ("q_fit", "prefill", "decode"),
    "run_pipeline": ("sft", "scorer", "actor_critic", "q_fit", "prefill", "decode", "mixture_prefill",
                     "mixture_decode"),
}


def _query(name: str, default):
  import gin
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


def configured_job() -> str:
  ref = _query("run.job", None)
  return getattr(getattr(ref, "configurable", None), "name", "") or ""


def configured_shapes(batch_scale: float = 1.0):
  """StepShapes from the parsed Gin config (the experiment's own lengths and batch), `batch_scale` x batches."""
  import gin
  from mtpo_jax.aot.steps import StepShapes
  conversation = gin.get_configurable("ConversationSettings")()
  loop = gin.get_configurable("LoopSettings")()
  hp = gin.get_configurable("ActorCriticHParams")()
  sft_lengths = _query("train_sft.task_feature_lengths", None) or {"inputs": 512, "targets": 128}
  scorer_lengths = _query("train_scorer.task_feature_lengths", None) or {"inputs": 1024}
  scale = lambda n: max(1, int(round(n * batch_scale)))
  return StepShapes(sft_batch=scale(loop.batch_size), sft_input_length=sft_lengths["inputs"],
                    sft_target_length=sft_lengths["targets"], contexts=scale(loop.batch_size),
                    turns=conversation.max_agent_turns, rl_input_length=conversation.input_length,
                    turn_tokens=conversation.max_turn_tokens, microbatch_rows=hp.microbatch_rows or 0,
                    scorer_batch=scale(loop.batch_size), scorer_input_length=scorer_lengths["inputs"],
                    q_batch=scale(loop.batch_size))


def fit_batches_to_mesh(shapes, dp: int):
  """`shapes` with every batch a multiple of the data-parallel size `dp` (rounded up, and printed: a trainer
  would refuse the batch instead) and the RL microbatch at least `dp` rows, so each splits over the data axes."""
  changes = {}
  for name in ("sft_batch", "scorer_batch", "q_batch"):
    n = getattr(shapes, name)
    if n % dp:
      changes[name] = -(-n // dp) * dp
  if shapes.microbatch_rows and shapes.microbatch_rows % dp:
    changes["microbatch_rows"] = -(-shapes.microbatch_rows // dp) * dp
  if changes:
    print(f"rounded up to the data-parallel size {dp}: " + ", ".join(
        f"{k} {getattr(shapes, k)} -> {v}" for k, v in changes.items()), flush=True)
  return dataclasses.replace(shapes, **changes)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--gin_file", action="append", default=[])
  ap.add_argument("--slice", default=None, help="slice name (mtpo_jax/aot/topology.SLICES); default: the Gin SLICE")
  ap.add_argument("--steps", default=None, help="comma-separated steps (default: those of the configured job)")
  ap.add_argument("--batch_scale", type=float, default=1.0, help="multiply the experiment's batch sizes")
  ap.add_argument("--require_tpu", action="store_true", help="fail instead of standing CPU devices in")
  ap.add_argument("--native", action="store_true",
                  help="compile for this process's own devices (e.g. on the GPU itself), judged against the "
                  "slice's chip figures")
  ap.add_argument("--json", default=None, help="write the reports here")
  ap.add_argument("--verbose", action="store_true")
  args, rest = ap.parse_known_args(argv)
  bindings = [a[len("--gin."):] for a in rest if a.startswith("--gin.")]
  unknown = [a for a in rest if not a.startswith("--gin.")]
  if unknown:
    ap.error(f"unrecognized arguments {unknown}")

  from mtpo_jax import cli_errors
  return cli_errors.run_command("aot_compile", lambda: _run(args, bindings), verbose=args.verbose)


def _run(args, bindings) -> int:
  import gin

  from mtpo_jax import gin_registry
  from mtpo_jax.aot import topology
  gin_registry.parse_config(args.gin_file, bindings)
  slice_name = args.slice or _query("%SLICE", None)
  if not slice_name:
    raise ValueError("no slice: pass --slice (e.g. v5e-16) or include a meshes/tpu_*.gin file that sets SLICE")
  chip, topo, n = topology.slice_spec(slice_name)
  import jax
  if args.native:
    local = jax.devices()
    if len(local) < n:
      raise ValueError(f"--native: slice {slice_name} has {n} devices, this process sees {len(local)}")
    target = topology.SliceDevices(slice_name, chip, tuple(local[:n]), f"{local[0].platform} (native)")
  else:
    if not (topo and topology.libtpu_available()):
      jax.config.update("jax_num_cpu_devices", n)  # before the CPU backend starts
    target = topology.slice_devices(slice_name, allow_stand_in=not args.require_tpu)

  from mtpo_jax import partitioning
  from mtpo_jax.aot import compile_report, steps
  config = gin.get_configurable("T5Config")()
  spec = gin.get_configurable("MeshSpec")()
  mesh = partitioning.make_mesh(spec, target.devices)
  partitioner = partitioning.Partitioner(mesh, spec.rules)
  shapes = configured_shapes(args.batch_scale)
  job = configured_job()
  names = tuple(args.steps.split(",")) if args.steps else JOB_STEPS.get(job)
  if not names:
    raise ValueError(f"no steps known for run.job = {job or 'unbound'}; pass --steps "
                     f"(some of {', '.join(steps.STEP_NAMES)})")
  shapes = fit_batches_to_mesh(shapes, steps.data_parallel_size(partitioner))
  hp = gin.get_configurable("ActorCriticHParams")()  # the run's (kl_in_reward adds a pass to the update)
  if "actor_critic" in names and hp.tau > 0 and "mixture_prefill" not in names:
    names = names + ("mixture_prefill", "mixture_decode")
  with gin.config_scope("policy"):
    optimizer = gin.get_configurable("make_optimizer")()
  print(f"slice {slice_name}: {target.num_devices} x {target.chip.name} ({target.compiler}); mesh "
        f"{dict(mesh.shape)}; model d_model={config.d_model} layers={config.num_encoder_layers}+"
        f"{config.num_decoder_layers} dtype={jax.numpy.dtype(config.dtype).name} remat={config.remat_policy}",
        flush=True)
  reports = []
  for step in steps.build_steps(names, config, partitioner, shapes, optimizer, hp):
    r = compile_report.compile_step(step, target.chip, slice_name, target.compiler, dict(mesh.shape),
                                    shapes.tokens(step.name))
    reports.append(r)
    print(format_report(r), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"slice": slice_name, "compiler": target.compiler, "shapes": shapes.__dict__,
                 "reports": [r.to_json() for r in reports]}, f, indent=1)
  return 0


def format_report(r) -> str:
  gib = lambda b: f"{b / 2**30:.2f} GiB"
  if r.error:
    return f"  {r.step:16s} does not fit: {r.error}"
  m = r.memory
  return (f"  {r.step:16s} {'fits' if r.fits else 'DOES NOT FIT'} {gib(r.peak_bytes)} of {gib(r.hbm_bytes)} "
          f"(arguments {gib(m['argument_size_in_bytes'])}, outputs {gib(m['output_size_in_bytes'])}, aliased "
          f"{gib(m['alias_size_in_bytes'])}, temporaries {gib(m['temp_size_in_bytes'])}, code "
          f"{gib(m['generated_code_size_in_bytes'])}); {r.flops:.3e} FLOPs, {r.bytes_accessed:.3e} bytes per device; "
          f"roofline {r.roofline_s * 1e3:.2f} ms ({r.bound}-bound, MFU <= {r.mfu_bound:.1%}); compile {r.compile_s:.1f} s")


if __name__ == "__main__":
  sys.exit(main())
