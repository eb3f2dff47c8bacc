"""Human-readable metrics: JSONL, TensorBoard events and a progress bar. Only process 0 writes."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm


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
