"""Ahead-of-time compiles: per-device argument bytes against a hand count of the sharded state, the roofline by
hand, the compile-only tool end to end, and (with libtpu) the TPU compiler on a real v5e topology."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax import partitioning
from mtpo_jax.aot import compile_report, hardware, steps, topology
from mtpo_jax.models.config import T5Config
from mtpo_jax.training import optimizers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def t5_param_shapes(c: T5Config) -> list[tuple[tuple[int, ...], bool]]:
  """Every parameter of a gated-GELU, untied T5 as (shape, has an `embed` axis), written from the architecture
  (not from the model's init): embeddings and head, per encoder layer 2 norms + q, k, v, o + wi_0, wi_1, wo, per
  decoder layer 3 norms + 2 x (q, k, v, o) + the MLP, two final norms and two relative-position tables."""
  e, h, d, f, v = c.d_model, c.num_heads, c.d_kv, c.d_ff, c.vocab_size
  attention = [((e, h, d), True)] * 3 + [((h, d, e), True)]
  mlp = [((e, f), True), ((e, f), True), ((f, e), True)]
  norm = [((e,), True)]
  shapes = [((v, e), True), ((e, v), True)] + norm * 2 + [((c.relative_attention_num_buckets, h), False)] * 2
  shapes += (norm * 2 + attention + mlp) * c.num_encoder_layers
  shapes += (norm * 3 + attention * 2 + mlp) * c.num_decoder_layers
  return shapes


def sharded_bytes(shape: tuple[int, ...], has_embed: bool, fsdp: int, itemsize: int = 4) -> int:
  n = math.prod(shape) * itemsize
  return n // fsdp if has_embed else n


def _sft_step(config, mesh_spec, devices, batch, lengths):
  mesh = partitioning.make_mesh(mesh_spec, devices)
  partitioner = partitioning.Partitioner(mesh, mesh_spec.rules)
  shapes = steps.StepShapes(sft_batch=batch, sft_input_length=lengths[0], sft_target_length=lengths[1])
  return steps.sft_step(config, *optimizers.make_optimizer("adamw", 1e-3), partitioner, shapes), shapes


def test_sft_arguments_are_the_hand_counted_shards_on_a_cpu_stand_in():
  # 8 CPU devices as data 2 x fsdp 4: every parameter with an `embed` axis, and its two AdamW moments, is split 4
  # ways; the batch 8 ways. Replicating the parameters, or sharding the moments differently, fails this.
  config = T5Config(vocab_size=256, d_model=64, d_kv=16, num_heads=4, d_ff=128)
  step, shapes = _sft_step(config, partitioning.MeshSpec(data=2, fsdp=4), jax.devices()[:8], 16, (32, 8))
  report = compile_report.compile_step(step, hardware.CHIPS["v5e"], "cpu8", "cpu stand-in", {}, 0)
  params = sum(sharded_bytes(s, e, 4) for s, e in t5_param_shapes(config))
  assert step.params == sum(math.prod(s) for s, _ in t5_param_shapes(config))
  batch = 16 * (32 + 8 + 8 + 8) * 4 // 8  # encoder ids, decoder ids, targets, weights; 2 rows per device
  scalars = report.memory["argument_size_in_bytes"] - (3 * params + batch)
  assert 0 <= scalars <= 32, (report.memory, params, batch)  # step, rng [2], the optimizer's step counters
  assert report.fits and report.flops > 0 and report.bytes_accessed > 0


def test_roofline_by_hand():
  chip = hardware.CHIPS["v5e"]  # 197 TFLOP/s, 819 GB/s, one device per chip
  r = hardware.roofline(197e12 * 0.010, 819e9 * 0.004, chip)  # 10 ms of compute, 4 ms of memory traffic
  assert r.step_s == pytest.approx(0.010) and r.bound == "compute" and r.mfu_bound == pytest.approx(1.0)
  r = hardware.roofline(197e12 * 0.001, 819e9 * 0.004, chip)
  assert r.step_s == pytest.approx(0.004) and r.bound == "memory" and r.mfu_bound == pytest.approx(0.25)
  split = hardware.Chip("x", "x", 275.0, 32.0, 1200.0, 2, "")  # a chip shown as two devices: each has half
  assert split.device_peak_flops == 137.5e12 and split.device_hbm_bytes == 16 * 2**30
  assert hardware.chip_for("TPU v5 lite").name == "TPU v5e" and hardware.chip_for("TPU v5").name == "TPU v5p"


def test_every_batch_is_rounded_up_to_the_data_parallel_size():
  sys.path.insert(0, os.path.join(REPO, "tools"))
  import aot_compile
  s = aot_compile.fit_batches_to_mesh(steps.StepShapes(sft_batch=4, scorer_batch=32, q_batch=20,
                                                       microbatch_rows=64), 16)
  assert (s.sft_batch, s.scorer_batch, s.q_batch, s.microbatch_rows) == (16, 32, 32, 64)
  assert aot_compile.fit_batches_to_mesh(steps.StepShapes(microbatch_rows=64), 256).microbatch_rows == 256
  assert steps.StepShapes().update_rows == 512  # 16 x 2 x 10 = 320 rows, padded to a power of two as train_rl does


def test_the_tool_compiles_every_step_of_an_mtpo_tau_run(tmp_path):
  out = tmp_path / "report.json"
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": ""}
  env.pop("XLA_FLAGS", None)  # the tool sets the device count itself
  cmd = [sys.executable, os.path.join(REPO, "tools", "aot_compile.py"), "--gin_file=experiments/mtpo_tau_tiny.gin",
         "--slice=h100x8", "--gin.MeshSpec.data=2", "--gin.MeshSpec.fsdp=4", "--gin.MODEL_DIR='unused'",
         "--gin.ConversationSettings.input_length=64", "--gin.ConversationSettings.max_turn_tokens=8",
         f"--json={out}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  data = json.loads(out.read_text())
  assert data["compiler"] == "cpu stand-in" and "cpu stand-in" in proc.stdout
  names = [r["step"] for r in data["reports"]]
  assert names == ["actor_critic", "prefill", "decode", "mixture_prefill", "mixture_decode"], names
  by = {r["step"]: r for r in data["reports"]}
  assert all(r["fits"] and r["flops"] > 0 and r["mesh"] == {"data": 2, "fsdp": 4, "model": 1}
             for r in data["reports"])
  # the mixture runs both models: twice the parameters and about twice the FLOPs of the policy alone
  assert by["mixture_prefill"]["params"] == 2 * by["prefill"]["params"]
  assert 1.8 < by["mixture_decode"]["flops"] / by["decode"]["flops"] < 2.2


requires_libtpu = pytest.mark.skipif(not topology.libtpu_available(), reason="libtpu not installed (the tpu extra)")


@requires_libtpu
def test_tpu_compile_of_the_sft_step_for_v5e_matches_the_hand_count():
  # Widths chosen so every sharded array fills whole (8, 128) float32 tiles on 4 devices: the TPU compiler pads
  # only the small arrays (norm scales, relative-position tables, scalars; at most 512 bytes or 128-element rows).
  config = T5Config(vocab_size=512, d_model=512, d_kv=128, num_heads=8, d_ff=512)
  target = topology.slice_devices("v5e-4", allow_stand_in=False)
  step, _ = _sft_step(config, partitioning.MeshSpec(data=1, fsdp=4), target.devices, 8, (128, 128))
  report = compile_report.compile_step(step, target.chip, "v5e-4", target.compiler, {}, 0)
  hand = 3 * sum(sharded_bytes(s, e, 4) for s, e in t5_param_shapes(config)) + 8 * (128 * 4) * 4 // 4
  padded = 3 * sum(_tpu_padded(s, e) for s, e in t5_param_shapes(config)) + 8 * (128 * 4) * 4 // 4 + 8 * 512
  got = report.memory["argument_size_in_bytes"]
  assert hand <= got <= padded, (hand, got, padded)
  assert report.fits and report.flops > 0


def _tpu_padded(shape, has_embed):
  """Upper bound of a sharded float32 array's TPU footprint: each of its last two dims padded to 128."""
  shape = list(shape)
  if has_embed:
    i = next(i for i, d in enumerate(shape) if d in (512,))
    shape[i] //= 4
  pad = lambda d: -(-d // 128) * 128
  tail = [pad(d) for d in shape[-2:]]
  return max(512, math.prod(shape[:-2]) * math.prod(tail) * 4)


@requires_libtpu
def test_a_step_too_big_for_the_chip_is_a_row_not_a_crash():
  target = topology.slice_devices("v5e-4", allow_stand_in=False)
  mesh = partitioning.make_mesh(partitioning.MeshSpec(data=4), target.devices)
  partitioner = partitioning.Partitioner(mesh)
  x = jax.ShapeDtypeStruct((4 * 65536, 65536), jnp.float32, sharding=partitioner.data_sharding(2))  # 16 GiB each
  jitted = partitioner.jit(lambda a: jnp.exp(a) * 2.0 + jnp.sin(a), in_shardings=(x.sharding,),
                           out_shardings=x.sharding)
  report = compile_report.compile_step(steps.AbstractStep("big", jitted, (x,), 0), target.chip, "v5e-4", "tpu", {},
                                       0)
  assert not report.fits and report.peak_bytes is None or report.peak_bytes > report.hbm_bytes
  assert np.isfinite(report.hbm_bytes)


def test_depth_extrapolation_is_the_line_through_two_probes():
  sys.path.insert(0, os.path.join(REPO, "tools"))
  import scaling_table
  mem = lambda base, per: {k: base + per for k in scaling_table.MEMORY_EXTRAPOLATED}
  # per device: 1 GiB + 0.25 GiB per layer; 1e12 + 1e11 FLOPs per layer; bytes 1e9 + 1e8 per layer
  probe = lambda layers: {"status": "ok", "peak_bytes": 2**30 + layers * 2**28, "flops": 1e12 + layers * 1e11,
                          "bytes_accessed": 1e9 + layers * 1e8, "memory": mem(1.0, layers), "wall_s": 1.0,
                          "hbm_bytes": 16 * 2**30, "compiler": "tpu", "mesh": {}}
  out = scaling_table.extrapolate({2: probe(2), 4: probe(4)}, 24, "v5e-16")
  assert out["peak_bytes"] == pytest.approx(2**30 + 24 * 2**28)  # 7 GiB: fits a v5e's 16
  assert out["flops"] == pytest.approx(1e12 + 24 * 1e11) and out["fits"]
  assert out["memory"]["temp_size_in_bytes"] == pytest.approx(25.0)
  assert out["roofline_s"] == pytest.approx(max(3.4e12 / 197e12, 3.4e9 / 819e9))
  assert out["method"] == "extrapolated from 2- and 4-layer compiles"
  big = scaling_table.extrapolate({2: probe(2), 4: {**probe(4), "peak_bytes": 2**30 + 4 * 2**30}}, 24, "v5e-16")
  assert not big["fits"]  # 1.75 GiB per layer from 4 layers on: 40 GiB at 24


def test_the_microbatched_update_counts_every_microbatch():
  # XLA's cost analysis counts a loop body once; the update's 4 microbatches must count 4 times, so its FLOPs
  # equal (up to the optimizer update outside the loops) those of the same step run on all rows at once.
  from mtpo_jax.rl.actor_critic import ActorCriticHParams
  config = T5Config(vocab_size=256, d_model=64, d_kv=16, num_heads=4, d_ff=128)
  mesh = partitioning.make_mesh(partitioning.MeshSpec(data=1, fsdp=4), jax.devices()[:4])
  partitioner = partitioning.Partitioner(mesh)
  tx = optimizers.make_optimizer("adafactor", 1e-3)[0]
  flops = {}
  for mb in (0, 16):
    shapes = steps.StepShapes(contexts=8, copies=2, turns=4, rl_input_length=32, turn_tokens=8, microbatch_rows=mb)
    step = steps.actor_critic_step(config, tx, tx, ActorCriticHParams(), partitioner, shapes)
    assert step.loop_trips == (4 if mb else 1)
    flops[mb] = compile_report.compile_step(step, hardware.CHIPS["v5e"], "cpu4", "cpu stand-in", {}, 0).flops
  assert flops[16] == pytest.approx(flops[0], rel=0.03), flops
