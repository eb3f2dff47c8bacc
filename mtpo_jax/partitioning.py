"""Meshes, logical-axis rules and shardings: the only home of PartitionSpec in the project.

The mesh has three axes: `data` (pure data parallelism), `fsdp` (data parallelism with parameters and
optimizer state sharded along `embed`), and `model` (tensor parallelism over heads, mlp and vocab).
State is initialised directly in its sharded layout: `jax.eval_shape` gives the abstract state, the logical
names of the parameters give their shardings, and `jax.jit(init, out_shardings=...)` materialises each shard
on its device without a replicated copy ever existing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from mtpo_jax import distributed

MESH_AXES = ("data", "fsdp", "model")
LogicalRules = tuple[tuple[str, Any], ...]

# Priority-ordered: a logical name takes the first rule whose mesh axes are still free in that array,
# so an activation [batch, length, embed] gives `embed` nothing once `batch` took `fsdp`.
DEFAULT_RULES: LogicalRules = (
    ("batch", ("data", "fsdp")),
    ("vocab", "model"),
    ("heads", "model"),
    ("mlp", "model"),
    ("embed", "fsdp"),
    ("kv", None),
    ("length", None),
    ("relpos_buckets", None),
)


@dataclasses.dataclass(frozen=True)
class MeshSpec:
  """Mesh shape; one axis may be -1 to take the remaining devices. Bound in gin/meshes/*.gin."""
  data: int = -1
  fsdp: int = 1
  model: int = 1
  rules: LogicalRules = DEFAULT_RULES

  def shape(self, num_devices: int) -> tuple[int, int, int]:
    dims = [self.data, self.fsdp, self.model]
    if dims.count(-1) > 1:
      raise ValueError(f"at most one mesh axis may be -1, got {self}")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
      if num_devices % known:
        raise ValueError(f"{num_devices} devices cannot be split into {self}")
      dims[dims.index(-1)] = num_devices // known
    if math.prod(dims) != num_devices:
      raise ValueError(f"MeshSpec {dict(zip(MESH_AXES, dims))} needs {math.prod(dims)} devices, "
                       f"but {num_devices} are available")
    return tuple(dims)


def make_mesh(spec: MeshSpec, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, model) mesh with Auto axis types (classic GSPMD propagation inside jit)."""
  devices = list(devices if devices is not None else jax.devices())
  shape = spec.shape(len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def logical_param_specs(boxed_params: Any) -> Any:
  """Logical PartitionSpecs of boxed parameters; raises if any parameter lacks a name per dimension."""
  missing = []

  def check(path, leaf):
    if not isinstance(leaf, nn.LogicallyPartitioned) or len(leaf.names) != len(leaf.value.shape):
      missing.append(jax.tree_util.keystr(path))
    return leaf

  jax.tree_util.tree_map_with_path(check, boxed_params,
                                   is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  if missing:
    raise ValueError(f"parameters without logical axis names: {missing}")
  return nn.get_partition_spec(boxed_params)


def _path_key(path) -> tuple[str, ...]:
  out = []
  for k in path:
    out.append(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))))
  return tuple(out)


class Partitioner:
  """Binds a mesh and logical rules; turns logical specs into shardings and jits functions under them."""

  def __init__(self, mesh: Mesh, rules: LogicalRules = DEFAULT_RULES):
    self.mesh, self.rules = mesh, tuple(rules)

  @contextlib.contextmanager
  def context(self):
    """Mesh and rules in scope, so activation constraints inside traced functions resolve."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def sharding(self, logical_axes: Sequence[str | None]) -> NamedSharding:
    return nn.logical_to_mesh_sharding(P(*logical_axes), self.mesh, self.rules)

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def data_sharding(self, ndim: int) -> NamedSharding:
    """Leading (batch) dimension split over data and fsdp; the rest replicated."""
    return self.sharding(("batch",) + (None,) * (ndim - 1))

  def check_batch_size(self, rows: int, setting: str) -> None:
    """ValueError naming `setting` unless `rows` splits evenly over the data-parallel mesh axes (checked before
    any batch is placed: JAX's own error names only a sharding and a shape)."""
    axes = self.data_sharding(1).spec[0]
    axes = axes if isinstance(axes, tuple) else (axes,) if axes else ()
    shards = int(np.prod([self.mesh.shape[a] for a in axes])) if axes else 1
    if rows < 1 or rows % shards:
      raise ValueError(f"{setting} = {rows} must be a positive multiple of {shards}, the data-parallel size of "
                       f"the mesh {dict(self.mesh.shape)} (MeshSpec)")

  def batch_shardings(self, abstract_batch: Any) -> Any:
    return jax.tree.map(lambda x: self.data_sharding(len(x.shape)), abstract_batch)

  def state_shardings(self, abstract_state: Any, param_specs: Any, params_path: str = "params") -> Any:
    """Shardings for any state pytree: a leaf whose path ends with a parameter's path and whose shape equals
    that parameter's (the parameter itself, Adam moments, ...) takes its sharding; others are replicated."""
    by_path: dict[tuple[str, ...], tuple[tuple[int, ...], NamedSharding]] = {}
    abstract_params = getattr(abstract_state, params_path)
    specs = jax.tree_util.tree_flatten_with_path(param_specs, is_leaf=lambda x: isinstance(x, P))[0]
    shapes = dict((_path_key(p), leaf.shape) for p, leaf in jax.tree_util.tree_flatten_with_path(abstract_params)[0])
    for path, spec in specs:
      key = _path_key(path)
      by_path[key] = (shapes[key], nn.logical_to_mesh_sharding(spec, self.mesh, self.rules))

    def pick(path, leaf):
      key = _path_key(path)
      for i in range(len(key)):
        hit = by_path.get(key[i:])
        if hit is not None and hit[0] == tuple(leaf.shape):
          return hit[1]
      return self.replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_state)

  def init_state(self, init_fn: Callable[[jax.Array], Any], rng: jax.Array, param_specs: Any) -> tuple[Any, Any]:
    """Materialises `init_fn(rng)` directly in its sharded layout; returns (state, state_shardings)."""
    with self.context():
      abstract = jax.eval_shape(init_fn, rng)
    shardings = self.state_shardings(abstract, param_specs)
    return self.init_sharded(init_fn, rng, shardings), shardings

  def init_sharded(self, init_fn: Callable[..., Any], rng: jax.Array, shardings: Any, host: Any = None,
                   host_shardings: Any = None) -> Any:
    """The one sharded-init path of every trainer: `init_fn(rng)`, or `init_fn(rng, host)` when host arrays are
    given (e.g. checkpoint parameters, placed shard by shard in `host_shardings` first), materialised directly in
    `shardings`; no array is ever whole on one device."""
    with self.context():
      if host is None:
        return jax.jit(init_fn, out_shardings=shardings)(rng)
      placed = self.place(host, host_shardings)
      return jax.jit(init_fn, in_shardings=(self.replicated, host_shardings), out_shardings=shardings)(rng, placed)

  def place(self, host: Any, shardings: Any) -> Any:
    """Host arrays (numpy, identical on every process) -> global arrays in `shardings`; each process copies only
    the shards its devices hold."""
    return jax.tree.map(lambda a, s: jax.make_array_from_callback(np.shape(a), s, lambda i, a=a: a[i]), host,
                        shardings)

  def jit(self, fn: Callable, in_shardings: Any, out_shardings: Any, donate_argnums=(),
          static_argnums=()) -> Callable:
    """`jax.jit` with shardings, traced and run with this mesh and these rules in scope."""
    jitted = jax.jit(fn, in_shardings=in_shardings, out_shardings=out_shardings, donate_argnums=donate_argnums,
                     static_argnums=static_argnums)

    def call(*args):
      with self.context():
        return jitted(*args)

    call.lower = lambda *args: _lower_in(self, jitted, *args)
    call.jitted = jitted
    return call

  def put_batch(self, batch: dict[str, np.ndarray],
                shardings: dict[str, NamedSharding] | None = None) -> dict[str, jax.Array]:
    """Global batch (host numpy, identical on every process) -> device arrays, sharded along the data axes
    unless `shardings` names another sharding for a key."""
    shardings = shardings or {}
    return self.place(batch, {k: shardings.get(k) or self.data_sharding(np.ndim(v)) for k, v in batch.items()})

  def batch_rows(self, num_rows: int) -> slice:
    """The block of a [num_rows, ...] data-sharded batch that this process holds (every row with one process)."""
    return distributed.process_rows(self.data_sharding(1), num_rows)

  def put_process_batch(self, local: dict[str, np.ndarray], num_rows: int) -> dict[str, jax.Array]:
    """This process's rows (`batch_rows(num_rows)` of each array) -> global arrays of `num_rows` rows, sharded
    along the data axes."""
    return distributed.global_batch(local, {k: self.data_sharding(v.ndim) for k, v in local.items()}, num_rows)


def _lower_in(partitioner: Partitioner, jitted, *args):
  with partitioner.context():
    return jitted.lower(*args)


def check_host_tree(host: Any, abstract: Any, message: str) -> None:
  """ValueError(`message` and the first difference) unless the host arrays `host` have the tree structure and
  shapes of `abstract`."""
  want = {p: tuple(a.shape) for p, a in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  have = {p: tuple(np.shape(a)) for p, a in jax.tree_util.tree_flatten_with_path(host)[0]}
  if want == have:
    return
  name = lambda path: "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
  missing = [name(p) for p in want if p not in have]
  extra = [name(p) for p in have if p not in want]
  shapes = [f"{name(p)} is {list(have[p])}, configured {list(want[p])}"
            for p in want if p in have and have[p] != want[p]]
  if shapes:
    first = shapes[0] + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else "")
  elif missing:
    first = f"{missing[0]} is missing ({len(missing)} missing)"
  else:
    first = f"{extra[0]} is not in the configured model ({len(extra)} extra)"
  raise ValueError(f"{message}: {first}")
