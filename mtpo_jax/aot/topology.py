"""The devices of a named accelerator slice, for compiling without the hardware.

With libtpu installed (the `tpu` extra), `jax.experimental.topologies.get_topology_desc` describes a real slice
(every chip, its coordinates and kind) on any machine, and XLA's TPU compiler compiles for it: memory and cost
figures are the TPU compiler's own. Without libtpu, or for GPU hosts (no CUDA compiler runs without a GPU), the
slice is stood in by as many CPU devices (the process must have been started with that many:
XLA_FLAGS=--xla_force_host_platform_device_count=N, `fake_cpu_flags`), and the figures are the CPU compiler's,
which `SliceDevices.compiler` says.

Slice names count chips for v5e, v5p and v6e and TensorCores for v4 (Cloud TPU's own naming: a v4-8 is 4
chips, 8 cores; a v5p-128 is 64 chips), and `hN` is N GPUs of one H100 host. libtpu describes each of a v4
chip's two TensorCores as a device, but JAX runs v4 in megacore mode, one device per chip (its meshes refuse
anything else), so one device per chip is kept.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import jax

from mtpo_jax.aot.hardware import CHIPS, Chip

# slice name -> (chip key, libtpu topology name or None for GPUs, JAX devices)
SLICES: dict[str, tuple[str, str | None, int]] = {
    "v4-8": ("v4", "v4:2x2x1", 4),
    "v4-32": ("v4", "v4:2x2x4", 16),
    "v4-128": ("v4", "v4:4x4x4", 64),
    "v5e-4": ("v5e", "v5e:2x2", 4),
    "v5e-16": ("v5e", "v5e:4x4", 16),
    "v5e-64": ("v5e", "v5e:8x8", 64),
    "v5e-256": ("v5e", "v5e:16x16", 256),
    "v5p-8": ("v5p", "v5p:2x2x1", 4),
    "v5p-128": ("v5p", "v5p:4x4x4", 64),
    "v6e-16": ("v6e", "v6e:4x4", 16),
    "h100x1": ("h100", None, 1),
    "h100x8": ("h100", None, 8),
    "h200x1": ("h200", None, 1),
}


class TopologyError(ValueError):
  """A slice name that is not known, or a process without the devices a stand-in needs."""


@dataclasses.dataclass(frozen=True)
class SliceDevices:
  """name: the slice; chip: its hardware figures; devices: what to build the mesh from; compiler: "tpu" when
  libtpu compiles for the real topology, "cpu stand-in" otherwise."""
  name: str
  chip: Chip
  devices: tuple
  compiler: str

  @property
  def num_devices(self) -> int:
    return len(self.devices)


def slice_spec(name: str) -> tuple[Chip, str | None, int]:
  if name not in SLICES:
    raise TopologyError(f"unknown slice {name!r}; expected one of {', '.join(SLICES)}")
  chip, topology, n = SLICES[name]
  return CHIPS[chip], topology, n


def fake_cpu_flags(num_devices: int, flags: str | None = None) -> str:
  """XLA_FLAGS (the given ones, or the environment's) with the host platform's device count set to
  `num_devices`: for a process that must stand a slice in with CPU devices."""
  flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
  kept = [f for f in flags.split() if not f.startswith("--xla_force_host_platform_device_count")]
  return " ".join(kept + [f"--xla_force_host_platform_device_count={num_devices}"])


def libtpu_available() -> bool:
  try:
    import libtpu  # noqa: F401
  except ImportError:
    return False
  return True


def _share_libtpu() -> None:
  """libtpu admits one process per machine (a lockfile) unless told otherwise; compiling touches no TPU, so
  several compiling processes (a test run beside a scaling table) may share it."""
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def slice_devices(name: str, allow_stand_in: bool = True) -> SliceDevices:
  """The devices of slice `name`: libtpu's description of the real topology when it is installed (TPU slices),
  else the process's first N CPU devices. TopologyError when neither is possible."""
  chip, topology, n = slice_spec(name)
  if topology is not None and libtpu_available():
    _share_libtpu()
    from jax.experimental import topologies
    devices = [d for d in topologies.get_topology_desc(platform="tpu", topology_name=topology).devices
               if getattr(d, "core_on_chip", 0) == 0]  # megacore: one device per chip
    if len(devices) != n:
      raise TopologyError(f"libtpu describes {topology} with {len(devices)} devices; the table expects {n}")
    return SliceDevices(name, chip, tuple(devices), "tpu")
  if not allow_stand_in:
    raise TopologyError(f"slice {name} needs libtpu (pip install -e '.[tpu]') for a real TPU compile")
  cpus = jax.devices("cpu")
  if len(cpus) < n:
    raise TopologyError(f"slice {name} is stood in by {n} CPU devices but this process has {len(cpus)}; start it "
                        f"with XLA_FLAGS={fake_cpu_flags(n)!r} (tools/aot_compile.py does this itself)")
  return SliceDevices(name, chip, tuple(cpus[:n]), "cpu stand-in")


def device_counts(names: Sequence[str]) -> int:
  """The CPU devices a process needs to stand in for every slice of `names` (the largest)."""
  return max(slice_spec(n)[2] for n in names)
