"""Compile one abstract step and read what the compiler says about it: per-device memory, FLOPs, bytes, roofline.

`compile_step` never raises for a step that does not fit: the TPU compiler refuses such a program with a
RESOURCE_EXHAUSTED error naming the bytes it needed, and that refusal is the answer ("does not fit"), reported
as a row with `fits = False` and the compiler's line.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from mtpo_jax.aot.hardware import Chip, roofline
from mtpo_jax.aot.steps import AbstractStep

MEMORY_FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
                 "generated_code_size_in_bytes")


@dataclasses.dataclass
class StepReport:
  """What one compile says, per device. `peak_bytes` = arguments + outputs - aliased (donated buffers are
  reused) + temporaries + code: the HBM the program holds at its peak. `flops` and `bytes_accessed` come from
  the compiler's cost analysis of one device's program; `roofline_s` is max(flops / peak, bytes / bandwidth) on
  `chip`; `mfu_bound` the model-FLOPs utilisation that bound allows. `error` holds the compiler's first line
  when it refused the program (then fits is False and the figures are absent)."""
  step: str
  slice: str
  compiler: str
  mesh: dict[str, int]
  params: int
  tokens: int
  fits: bool
  hbm_bytes: float
  peak_bytes: float | None = None
  memory: dict[str, int] | None = None
  flops: float | None = None
  bytes_accessed: float | None = None
  roofline_s: float | None = None
  bound: str | None = None
  mfu_bound: float | None = None
  compile_s: float | None = None
  loop_trips: int = 1
  error: str | None = None

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _cost(compiled) -> dict[str, float]:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return dict(cost or {})


def loop_corrected(flops: float, bytes_accessed: float, memory: dict[str, int], trips: int) -> tuple[float, float]:
  """(FLOPs, bytes) of a step whose loops run `trips` times, from XLA's cost analysis, which counts a loop body
  once (checked on the TPU compiler: a scan of 8 matmuls reports the FLOPs of one). Nearly all of the
  microbatched update's work is inside its loops, so FLOPs scale by `trips` (over-counting the optimizer update
  outside them, a few FLOPs per parameter); of the bytes, reading the arguments and writing the outputs happens
  once and the rest `trips` times. An approximation, documented in docs/scaling.md and checked there against the
  same step compiled without microbatches."""
  if trips <= 1:
    return flops, bytes_accessed
  once = min(bytes_accessed, memory["argument_size_in_bytes"] + memory["output_size_in_bytes"])
  return flops * trips, once + (bytes_accessed - once) * trips


def peak_bytes(memory: dict[str, int]) -> int:
  return (memory["argument_size_in_bytes"] + memory["output_size_in_bytes"] - memory["alias_size_in_bytes"]
          + memory["temp_size_in_bytes"] + memory["generated_code_size_in_bytes"])


def compile_step(step: AbstractStep, chip: Chip, slice_name: str, compiler: str, mesh: dict[str, int],
                 tokens: int) -> StepReport:
  """Lowers and compiles `step` for its partitioner's devices and reports on it against `chip`."""
  report = StepReport(step=step.name, slice=slice_name, compiler=compiler, mesh=dict(mesh), params=step.params,
                      tokens=tokens, fits=False, hbm_bytes=chip.device_hbm_bytes)
  t0 = time.time()
  try:
    compiled = step.jitted.lower(*step.args).compile()
  except Exception as exc:  # the compiler's refusal is a result; anything else is a bug and propagates
    text = str(exc)
    if "RESOURCE_EXHAUSTED" not in text and "exceeds available" not in text.lower():
      raise
    report.error = next((line.strip() for line in text.splitlines() if "RESOURCE_EXHAUSTED" in line),
                        text.splitlines()[0])[:400]
    report.compile_s = time.time() - t0
    return report
  report.compile_s = time.time() - t0
  mem = compiled.memory_analysis()
  report.memory = {f: int(getattr(mem, f, 0) or 0) for f in MEMORY_FIELDS}
  report.peak_bytes = peak_bytes(report.memory)
  report.fits = report.peak_bytes <= chip.device_hbm_bytes
  cost = _cost(compiled)
  report.flops, report.bytes_accessed = loop_corrected(float(cost.get("flops", 0.0)),
                                                       float(cost.get("bytes accessed", 0.0)), report.memory,
                                                       step.loop_trips)
  report.loop_trips = step.loop_trips
  bound = roofline(report.flops, report.bytes_accessed, chip)
  report.roofline_s, report.bound, report.mfu_bound = bound.step_s, bound.bound, bound.mfu_bound
  return report
