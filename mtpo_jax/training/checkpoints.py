"""Orbax checkpoints: periodic atomic saves of the whole train state plus JSON metadata, exact resume.

Each step directory holds `state/` (every array of the state, restored in the layout the caller asks for,
so a checkpoint written on one mesh restores on another) and `meta/` (JSON: data position, config
fingerprint, anything the trainer needs to continue exactly). Orbax writes to a temporary directory and
renames it on commit, so a killed save never shadows the previous good checkpoint.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint directory is missing, empty or unreadable."""


class Checkpointer:
  """Save every `save_every` steps (and when forced), keep the newest `keep`."""

  def __init__(self, directory: str, save_every: int = 1000, keep: int = 3, async_save: bool = False):
    if save_every <= 0:
      raise ValueError(f"save_every must be positive, got {save_every}")
    self.directory = os.path.abspath(directory)
    self.save_every = save_every
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def should_save(self, step: int) -> bool:
    return step % self.save_every == 0

  def save(self, step: int, state: Any, meta: dict[str, Any], force: bool = False) -> bool:
    if not (force or self.should_save(step)) or step in self._manager.all_steps():
      return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    return self._manager.save(step, args=args, force=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores into `abstract_state` (a pytree of jax.ShapeDtypeStruct with shardings)."""
    return restore_checkpoint(self._manager, self.directory, abstract_state, step)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def restore_checkpoint(manager: ocp.CheckpointManager, directory: str, abstract_state: Any,
                       step: int | None) -> tuple[Any, dict[str, Any]]:
  steps = list(manager.all_steps())
  if not steps:
    raise CheckpointError(f"no checkpoint found in {directory}")
  step = max(steps) if step is None else step
  if step not in steps:
    raise CheckpointError(f"checkpoint step {step} not found in {directory}; available: {sorted(steps)}")
  args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
  try:
    restored = manager.restore(step, args=args)
  except Exception as e:  # orbax raises many types (FileNotFoundError, ValueError, tensorstore errors)
    # A failed restore leaves orbax's pending read coroutines as garbage; finalise them here rather than at
    # a random later allocation (CPython 3.11 can turn a finaliser that runs inside ast.parse into a
    # SystemError).
    gc.collect()
    raise CheckpointError(f"checkpoint {directory}/{step} is unreadable or does not match the model "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
  return restored.state, dict(restored.meta)


def load_arrays(directory: str, step: int | None = None) -> Any:
  """The whole saved state of a trainer checkpoint (the latest step unless `step`) as a tree of numpy arrays.
  Reads checkpoints written on any topology (another device count, several processes): each array is restored
  whole on the host, whatever its sharding was."""
  if not os.path.isdir(directory):
    raise CheckpointError(f"checkpoint directory {directory} does not exist")
  manager = ocp.CheckpointManager(os.path.abspath(directory))
  steps = list(manager.all_steps())
  if not steps:
    raise CheckpointError(f"no checkpoint found in {directory}")
  step = max(steps) if step is None else step
  if step not in steps:
    raise CheckpointError(f"checkpoint step {step} not found in {directory}; available: {sorted(steps)}")
  path = os.path.join(os.path.abspath(directory), str(step), "state")
  try:
    checkpointer = ocp.PyTreeCheckpointer()
    tree = checkpointer.metadata(path)
    tree = getattr(tree, "item_metadata", tree)  # orbax wraps the tree metadata differently across versions
    tree = getattr(tree, "tree", tree)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=as_numpy))
  except Exception as e:  # orbax raises many types
    gc.collect()
    raise CheckpointError(f"checkpoint {directory}/{step} is unreadable ({type(e).__name__}: {e})") from e


def load_params(directory: str, step: int | None = None) -> Any:
  """Only the parameters of a trainer checkpoint, as host arrays (e.g. to initialise a value model from a
  policy, or to load the SFT reference policy); the caller places them on its mesh (`load_arrays`)."""
  restored = load_arrays(directory, step)
  if "params" not in restored:
    raise CheckpointError(f"checkpoint {directory} holds no 'params' (keys: {sorted(restored)})")
  return restored["params"]


def load_t5_params(directory: str, config: Any, what: str = "checkpoint", config_name: str = "its T5Config") -> Any:
  """`load_params` of a T5 checkpoint (host arrays), checked against the shapes `T5(config)` initialises;
  ValueError naming `what`, the directory and `config_name` when they differ (another size or layer count)."""
  import flax.linen as nn
  from mtpo_jax.models.t5 import T5
  params = load_params(directory)
  model, x = T5(config), np.ones((1, 4), np.int32)
  want = jax.tree.map(lambda a: a.shape, nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), x, x)["params"]))
  have = jax.tree.map(lambda a: tuple(np.shape(a)), params)
  if jax.tree.structure(want) != jax.tree.structure(have) or want != have:
    raise ValueError(f"the {what} {directory} does not match {config_name} (different shapes or layers)")
  return params


def restore_target(abstract: Any, shardings: Any) -> Any:
  """Abstract arrays carrying their shardings: what `Checkpointer.restore` needs to restore sharded."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def config_fingerprint(config: Any) -> dict[str, str]:
  """A dataclass config as sorted strings, stored in checkpoint metadata to refuse resuming another model."""
  return {k: str(v) for k, v in sorted(vars(config).items())}
