"""Human-readable metrics: JSONL, TensorBoard events and a progress bar. Only process 0 writes."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def _scalar(v: Any) -> float:
  return float(np.asarray(v))


class MetricsWriter:
  """`write(step, metrics, prefix)` appends one JSON line and TensorBoard scalars."""

  def __init__(self, directory: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.directory = directory
    self._jsonl = self._tb = None
    if self.enabled:
      os.makedirs(directory, exist_ok=True)
      self._jsonl = open(os.path.join(directory, "metrics.jsonl"), "a", buffering=1)
      from tensorboardX import SummaryWriter  # imported here: the writer starts a thread
      self._tb = SummaryWriter(os.path.join(directory, "tensorboard"))

  def write(self, step: int, metrics: dict[str, Any], prefix: str = "train") -> dict[str, float]:
    values = {k: _scalar(v) for k, v in metrics.items()}
    if self.enabled:
      record = {"step": int(step), "time": time.time(), **{f"{prefix}/{k}": v for k, v in values.items()}}
      self._jsonl.write(json.dumps(record) + "\n")
      for k, v in values.items():
        if math.isfinite(v):
          self._tb.add_scalar(f"{prefix}/{k}", v, step)
    return values

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


def progress(total: int, initial: int = 0, desc: str = "train") -> tqdm:
  """A progress bar on process 0 only (others get a disabled bar with the same interface)."""
  return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, disable=jax.process_index() != 0,
              mininterval=1.0)


def log_compiled_memory(compiled) -> None:
  """Logs an AOT-compiled step's per-device memory analysis, where the backend reports one."""
  try:
    mem = compiled.memory_analysis()
  except Exception:  # not every backend reports memory
    return
  if mem is None:
    return
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "generated_code_size_in_bytes")
  report = {f: getattr(mem, f, None) for f in fields}
  log.info("compiled train step memory per device (bytes): %s", json.dumps(report))
