"""Orbax checkpoints: periodic atomic saves of the whole train state plus JSON metadata, exact resume.

Each step directory holds `state/` (every array of the state, restored in the layout the caller asks for,
so a checkpoint written on one mesh restores on another) and `meta/` (JSON: data position, config
fingerprint, anything the trainer needs to continue exactly). Orbax writes to a temporary directory and
renames it on commit, so a killed save never shadows the previous good checkpoint; a save that fails (a full
disk) removes its temporary directory and raises CheckpointError naming the step.

After a save, `CHECKSUMS.json` in the step directory records the size and CRC-32 of every file under `state/` and
`meta/` (files, not arrays, so the check does not depend on the mesh that restores it). Every restore verifies
them first: a changed byte is a CheckpointError naming the step and the file, before orbax reads anything. A step
saved before checksums existed restores with a warning. `Checkpointer.restore(fall_back=True)` walks back to the
newest step that verifies, saying which it skipped.
"""

from __future__ import annotations

import dataclasses
import gc
import glob
import json
import logging
import os
import shutil
import zlib
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.partitioning import check_host_tree


log = logging.getLogger(__name__)
CHECKSUM_FILE = "CHECKSUMS.json"


class CheckpointError(RuntimeError):
  """A checkpoint directory is missing, empty, unreadable or corrupt."""


def _step_files(step_dir: str) -> list[str]:
  out = []
  for item in ("state", "meta"):
    for root, _, files in os.walk(os.path.join(step_dir, item)):
      out += [os.path.relpath(os.path.join(root, f), step_dir) for f in files]
  return sorted(out)


def _crc(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    while chunk := f.read(1 << 22):
      crc = zlib.crc32(chunk, crc)
  return crc


def write_checksums(step_dir: str) -> None:
  """CHECKSUMS.json: {relative path: [size, crc32]} of every file of the step (written atomically)."""
  sums = {f: [os.path.getsize(os.path.join(step_dir, f)), _crc(os.path.join(step_dir, f))]
          for f in _step_files(step_dir)}
  tmp = os.path.join(step_dir, CHECKSUM_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(sums, f)
  os.replace(tmp, os.path.join(step_dir, CHECKSUM_FILE))


def verify_checksums(step_dir: str) -> bool:
  """True when the step matches its CHECKSUMS.json, False when it has none (saved before checksums existed);
  CheckpointError naming the step directory and the first file that differs, or is missing or extra."""
  path = os.path.join(step_dir, CHECKSUM_FILE)
  if not os.path.exists(path):
    return False
  try:
    with open(path) as f:
      sums = json.load(f)
  except ValueError as e:
    raise CheckpointError(f"checkpoint {step_dir} is corrupt: {CHECKSUM_FILE} is unreadable ({e})") from None
  have = _step_files(step_dir)
  for name in sorted(set(sums) | set(have)):
    full = os.path.join(step_dir, name)
    if name not in have or name not in sums:
      what = "is missing" if name not in have else "is not in its checksum list"
      raise CheckpointError(f"checkpoint {step_dir} is corrupt: {name} {what}")
    if [os.path.getsize(full), _crc(full)] != sums[name]:
      raise CheckpointError(f"checkpoint {step_dir} is corrupt: {name} does not match its checksum (size, CRC-32)")
  return True


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
    self._remove_temporary()  # a save killed mid-write leaves one behind

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
    try:
      saved = self._manager.save(step, args=args, force=True)
      self._manager.wait_until_finished()
    except Exception as e:  # orbax raises many types; OSError(ENOSPC) for a full disk
      self._remove_temporary()
      raise CheckpointError(f"saving step {step} to {self.directory} failed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:300] if str(e) else ''}); the previous checkpoint "
                            f"(step {self.latest_step()}) is intact") from e
    if saved and jax.process_index() == 0:
      write_checksums(os.path.join(self.directory, str(step)))
    return saved

  def _remove_temporary(self) -> None:
    if jax.process_index() == 0:
      for tmp in glob.glob(os.path.join(self.directory, "*.orbax-checkpoint-tmp-*")):
        shutil.rmtree(tmp, ignore_errors=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any, step: int | None = None,
              fall_back: bool = False) -> tuple[Any, dict[str, Any]]:
    """Restores into `abstract_state` (a pytree of jax.ShapeDtypeStruct with shardings), after verifying the
    step's checksums. `fall_back`: when the newest step is corrupt, restore the newest one that verifies."""
    steps = sorted(self._manager.all_steps(), reverse=True) if step is None and fall_back else [step]
    for i, candidate in enumerate(steps):
      try:
        return restore_checkpoint(self._manager, self.directory, abstract_state, candidate)
      except CheckpointError as e:
        if "is corrupt" not in str(e) or i + 1 == len(steps):
          raise
        log.warning("%s; falling back to step %d", e, steps[i + 1])
    raise AssertionError("unreachable")

  def latest_good_step(self) -> int | None:
    """The newest step whose files match their checksums (or that has none), None if there is none."""
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        verify_checksums(os.path.join(self.directory, str(step)))
        return step
      except CheckpointError:
        continue
    return None

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _pick_step(manager: ocp.CheckpointManager, directory: str, step: int | None) -> int:
  """`step` (the newest when None) if `directory` holds it; CheckpointError naming the directory otherwise."""
  steps = sorted(manager.all_steps())
  if not steps:
    raise CheckpointError(f"no checkpoint found in {directory}")
  step = steps[-1] if step is None else step
  if step not in steps:
    raise CheckpointError(f"checkpoint step {step} not found in {directory}; available: {steps}")
  return step


def _verify(directory: str, step: int) -> None:
  step_dir = os.path.join(os.path.abspath(directory), str(step))
  try:
    verified = verify_checksums(step_dir)
  except CheckpointError as e:
    steps = sorted(int(d) for d in os.listdir(directory) if d.isdigit())
    raise CheckpointError(f"{e}; restore an earlier step (available: {steps}; trainers: "
                          "LoopSettings.restore_earlier_if_corrupt = True) or delete this one") from None
  if not verified:
    log.warning("checkpoint %s has no %s (saved before checksums existed): restoring it unverified", step_dir,
                CHECKSUM_FILE)


def restore_checkpoint(manager: ocp.CheckpointManager, directory: str, abstract_state: Any,
                       step: int | None) -> tuple[Any, dict[str, Any]]:
  step = _pick_step(manager, directory, step)
  _verify(directory, step)
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
  step = _pick_step(ocp.CheckpointManager(os.path.abspath(directory)), directory, step)
  _verify(directory, step)
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


def restore_target(abstract: Any, shardings: Any) -> Any:
  """Abstract arrays carrying their shardings: what `Checkpointer.restore` needs to restore sharded."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def config_fingerprint(config: Any) -> dict[str, str]:
  """A dataclass config as sorted strings, stored in checkpoint metadata to refuse resuming another model."""
  return {k: str(v) for k, v in sorted(vars(config).items())}


# POLICIES OF ANY RUN

# Where each kind of run keeps the policy's parameters inside its checkpoint's `state` item.
LAYOUTS = {"sft": ("params",), "rl": ("state", "policy", "params"), "iterative_ppo": ("policy", "params")}


@dataclasses.dataclass(frozen=True)
class LoadedPolicy:
  """A policy's params (host arrays) with where they came from: checkpoint directory, step, layout, meta."""
  params: Any
  config: T5Config
  checkpoint_dir: str
  step: int
  layout: str
  meta: dict


def _manager(directory: str) -> ocp.CheckpointManager:
  handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False),
                               item_handlers=handlers)


def checkpoint_steps(run_dir: str) -> list[int]:
  """The saved steps of a run (`find_checkpoint_dir`), ascending."""
  manager = _manager(find_checkpoint_dir(run_dir))
  steps = sorted(manager.all_steps())
  manager.close()
  return steps


def find_checkpoint_dir(run_dir: str) -> str:
  """`run_dir/checkpoints` (or `run_dir` itself, if it is a checkpoints directory) holding at least one step."""
  for d in (os.path.join(run_dir, "checkpoints"), run_dir):
    if os.path.isdir(d) and list(_manager(os.path.abspath(d)).all_steps()):
      return os.path.abspath(d)
  raise CheckpointError(f"no checkpoint found for run {run_dir!r}: expected {os.path.join(run_dir, 'checkpoints')}"
                        "/<step>/ as written by an SFT, RL or Iterative PPO run (or a checkpoints directory)")


def _layout(tree: Any, where: str) -> str:
  """Which LAYOUTS entry the checkpoint's state tree (nested dicts) follows."""
  for name, path in LAYOUTS.items():
    node = tree
    for key in path:
      node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and node:
      return name
  top = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
  raise CheckpointError(f"{where} holds no policy parameters (top-level keys {top}); expected one of "
                        f"{ {k: '/'.join(v) for k, v in LAYOUTS.items()} }")


def load_policy(run_dir: str, config: T5Config, step: int | None = None) -> LoadedPolicy:
  """The policy params of an SFT, RL or Iterative PPO run (newest step unless `step`), as host numpy arrays;
  only the policy's arrays are read (not optimizer states or the RL reference). `run_dir`: the run directory or
  its checkpoints directory. CheckpointError if there is no readable checkpoint; ValueError if the parameters do
  not have the shapes `T5(config)` initialises."""
  directory = find_checkpoint_dir(run_dir)
  manager = _manager(directory)
  step = _pick_step(manager, directory, step)
  _verify(directory, step)
  where = f"{directory}/{step}"
  try:
    metadata = manager.item_metadata(step)["state"]
  except Exception as e:  # orbax raises many types
    raise CheckpointError(f"checkpoint {where} is unreadable ({type(e).__name__}: {e})") from e
  tree = getattr(metadata, "tree", metadata)
  layout = _layout(tree, where)
  meta = dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta or {})
  if layout == "sft":
    params = load_params(directory, step)
  else:
    node = tree
    for key in LAYOUTS[layout]:
      node = node[key]
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), dict(node))
    for key in reversed(LAYOUTS[layout]):
      target = {key: target}
    args = ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                  restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target))
    params = manager.restore(step, args=ocp.args.Composite(state=args)).state
    for key in LAYOUTS[layout]:
      params = params[key]
  manager.close()
  model, x = T5(config), np.ones((1, 4), np.int32)
  check_host_tree(params, nn.unbox(jax.eval_shape(model.init, jax.random.PRNGKey(0), x, x)["params"]),
                  f"the policy checkpoint {where} does not match its T5Config (different shapes or layers)")
  return LoadedPolicy(params, config, directory, int(step), layout, meta)
