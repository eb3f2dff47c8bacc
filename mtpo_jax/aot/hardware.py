"""Peak figures of the accelerators the scaling tables name, and the roofline bound of one step on them.

Figures are per chip, from the vendors' pages (cited per row); where a runtime shows a chip as several devices
(`devices_per_chip`; none does as used here: JAX runs TPU v4 in megacore mode, one device per chip) the
per-device figures are the chip's divided evenly. The roofline is the classic one (Williams et al., 2009): a step cannot take less than its FLOPs over the
peak FLOP/s, nor less than the bytes it moves over the memory bandwidth; the larger is the bound.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Chip:
  """name: what the tables print; device_kind: a substring of jax.Device.device_kind; peak_bf16_tflops: dense
  bf16 matmul peak per chip; hbm_gib: memory per chip (GiB, 2**30 bytes); hbm_gbps: memory bandwidth per chip
  (GB/s, 1e9 bytes/s); devices_per_chip: JAX devices per chip; source: where the figures come from."""
  name: str
  device_kind: str
  peak_bf16_tflops: float
  hbm_gib: float
  hbm_gbps: float
  devices_per_chip: int
  source: str

  @property
  def device_peak_flops(self) -> float:
    return self.peak_bf16_tflops * 1e12 / self.devices_per_chip

  @property
  def device_hbm_bytes(self) -> float:
    return self.hbm_gib * 2**30 / self.devices_per_chip

  @property
  def device_bandwidth(self) -> float:
    return self.hbm_gbps * 1e9 / self.devices_per_chip


# "GB" on the TPU pages is the same HBM the compiler reports in GiB (v5e: "16 GB"; XLA: "available HBM 15.75G"
# after its reservation), so capacities are taken as GiB; H100/H200 capacities are decimal GB, converted.
CHIPS: dict[str, Chip] = {
    "v4": Chip("TPU v4", "TPU v4", 275.0, 32.0, 1200.0, 1, "https://cloud.google.com/tpu/docs/v4"),
    "v5e": Chip("TPU v5e", "TPU v5 lite", 197.0, 16.0, 819.0, 1, "https://cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip("TPU v5p", "TPU v5", 459.0, 95.0, 2765.0, 1, "https://cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip("TPU v6e", "TPU v6 lite", 918.0, 32.0, 1640.0, 1, "https://cloud.google.com/tpu/docs/v6e"),
    "h100": Chip("H100 SXM", "H100", 989.0, 80e9 / 2**30, 3350.0, 1,
                 "https://www.nvidia.com/en-us/data-center/h100/ (dense bf16: half the sparse 1,979)"),
    "h200": Chip("H200 SXM", "H200", 989.0, 141e9 / 2**30, 4800.0, 1, "https://www.nvidia.com/en-us/data-center/h200/"),
}


def chip_for(device_kind: str) -> Chip | None:
  """The chip whose device_kind is the longest match in `device_kind` ("TPU v5 lite" before "TPU v5")."""
  hits = [c for c in CHIPS.values() if c.device_kind.lower() in device_kind.lower()]
  return max(hits, key=lambda c: len(c.device_kind)) if hits else None


@dataclasses.dataclass(frozen=True)
class Roofline:
  """Per-device lower bounds of one step (seconds) and what bounds it; mfu_bound is the model-FLOPs utilisation
  the step could reach at best (its FLOPs at the bound time over the peak): 1.0 when compute-bound."""
  compute_s: float
  memory_s: float

  @property
  def step_s(self) -> float:
    return max(self.compute_s, self.memory_s)

  @property
  def bound(self) -> str:
    return "compute" if self.compute_s >= self.memory_s else "memory"

  @property
  def mfu_bound(self) -> float:
    return self.compute_s / self.step_s if self.step_s > 0 else float("nan")


def roofline(flops_per_device: float, bytes_per_device: float, chip: Chip) -> Roofline:
  """max(FLOPs / peak, bytes / bandwidth) for one device's share of a step (the compiler's cost analysis of an
  SPMD program counts one device's work)."""
  return Roofline(flops_per_device / chip.device_peak_flops, bytes_per_device / chip.device_bandwidth)
