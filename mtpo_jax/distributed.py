"""Multi-process (multi-controller) JAX: the one home for what differs when several processes form one mesh.

Under `jax.distributed` every process runs the same program on its own devices; jitted computations over
global arrays are collective, so all processes must call them in the same order with the same shapes. The
rules this project follows (docs/distributed.md):

* Batches: the leading (batch) dimension is sharded along the mesh's data axes; each process materialises
  only the rows its own devices hold (`process_rows`), and `global_batch` assembles the global array from those
  per-process rows (`jax.make_array_from_process_local_data`). With one process this is the whole batch.
* Work items that are not arrays (rollout contexts, evaluation contexts) are split into contiguous blocks, one
  per process (`process_slice`), and small host results are gathered back in process order
  (`gather_rows`), so the concatenation is the global order a single process would have produced.
* Rollouts decode on each process's local devices with a host-local copy of the parameters
  (`host_local_params`): conversations end at different turns, so lock-stepped global decoding would
  synchronise every process on the slowest conversation for no gain at the sizes that fit one host. The
  experience (a few MB of ids) is then gathered so the update batch is the same for any process count.
* Only process 0 writes logs, metrics, plots and text files (`is_primary`); every process takes part in orbax
  saves and restores (orbax coordinates them itself).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding


def is_primary() -> bool:
  """Whether this process writes human-facing output (logs, metrics, plots, text files)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Blocks until every process reaches the barrier `name` (a no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def process_rows(sharding: Sharding, num_rows: int) -> slice:
  """The contiguous block of the leading dimension [num_rows, ...] that this process's devices hold under
  `sharding`. ValueError if the block is not contiguous (a mesh whose data axes interleave processes)."""
  if jax.process_count() == 1:
    return slice(0, num_rows)
  covered = np.zeros(num_rows, bool)
  for index in sharding.addressable_devices_indices_map((num_rows,)).values():
    covered[index[0] if index else slice(None)] = True
  held = np.flatnonzero(covered)
  lo, hi = int(held[0]), int(held[-1]) + 1
  if hi - lo != len(held):
    raise ValueError(f"process {jax.process_index()} holds non-contiguous rows of a {num_rows}-row batch under "
                     f"{sharding}; order the mesh so each process's devices are adjacent along the data axes")
  return slice(lo, hi)


def global_batch(local: dict[str, np.ndarray], shardings: dict[str, Sharding], num_rows: int
                 ) -> dict[str, jax.Array]:
  """Per-process rows (this process's `process_rows` block of each array) -> global device arrays of
  `num_rows` rows."""
  return {k: jax.make_array_from_process_local_data(shardings[k], v, (num_rows,) + v.shape[1:])
          for k, v in local.items()}


def process_slice(num_items: int, what: str = "items", divisible: bool = False) -> slice:
  """This process's contiguous block of `num_items` work items (blocks differ by at most one item; exactly
  equal with `divisible`, else ValueError naming `what`)."""
  p, n = jax.process_index(), jax.process_count()
  if divisible and num_items % n:
    raise ValueError(f"{what} = {num_items} must be divisible by the {n} processes")
  if num_items < n:
    raise ValueError(f"{what} = {num_items} is fewer than the {n} processes")
  bounds = np.linspace(0, num_items, n + 1).round().astype(int)  # equal blocks when n divides num_items
  return slice(int(bounds[p]), int(bounds[p + 1]))


def gather_rows(x: np.ndarray) -> np.ndarray:
  """Concatenates every process's [n_p, ...] host array along axis 0, in process order (n_p may differ)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return x
  sizes = np.asarray(multihost_utils.process_allgather(np.array([len(x)], np.int32))).reshape(-1)
  # sent as raw bytes: JAX would otherwise turn float64 / int64 into 32-bit values
  width = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
  padded = np.zeros((int(sizes.max()), width), np.uint8)
  padded[:len(x)] = np.ascontiguousarray(x).view(np.uint8).reshape(len(x), width)
  every = np.asarray(multihost_utils.process_allgather(padded))  # [P, max n_p, width]
  raw = np.concatenate([every[p, :sizes[p]] for p in range(len(sizes))])
  return raw.view(x.dtype).reshape((-1,) + x.shape[1:])


def process_offset(num_local: int) -> int:
  """Where this process's `num_local` items start in the process-order concatenation (`gather_rows`)."""
  if jax.process_count() == 1:
    return 0
  sizes = np.asarray(multihost_utils.process_allgather(np.array([num_local], np.int32))).reshape(-1)
  return int(sizes[:jax.process_index()].sum())


def host_local_params(params: Any) -> Any:
  """Parameters usable by computations on this process's devices alone: the global arrays themselves with one
  process, else their full values gathered from every process and placed on the first local device."""
  if jax.process_count() == 1:
    return params
  gathered = multihost_utils.process_allgather(params, tiled=True)
  return jax.device_put(gathered, jax.local_devices()[0])


def to_host(tree: Any) -> Any:
  """Full host (numpy) values of global arrays, on every process (a collective when they span processes)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def describe() -> str:
  """One line: this process, the process count and the device counts."""
  return (f"process {jax.process_index()}/{jax.process_count()}, {jax.local_device_count()} local of "
          f"{jax.device_count()} devices ({jax.default_backend()})")


def split_for_process(items: Sequence[Any], what: str = "items") -> list[Any]:
  """This process's contiguous block of `items` (see `process_slice`)."""
  return list(items[process_slice(len(items), what)])
