"""Checked checkpoints (checkpoints.py): a flipped byte is refused before orbax reads it, naming the step and the
file; the trainers can fall back to the newest step that verifies; a failed save (a full disk) leaves no
temporary directory and names the step; a step saved before checksums existed restores with a warning; the
NaN stop names the newest step that actually verifies."""

import glob
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtpo_jax import checkpoints as ck
from mtpo_jax.training import loop as lp


def _state(v):
  return {"w": jnp.full((64, 8), float(v)), "b": jnp.arange(8.0) + v}


def _abstract():
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), _state(0))


def _saved(tmp_path, steps=(1, 2)):
  ckpt = ck.Checkpointer(str(tmp_path / "checkpoints"), save_every=1, keep=5)
  for s in steps:
    ckpt.save(s, _state(s), {"data_position": s})
  return ckpt


def _flip_a_byte(step_dir):
  files = [f for f in glob.glob(os.path.join(step_dir, "state", "**", "*"), recursive=True)
           if os.path.isfile(f) and os.path.getsize(f) > 64]
  target = max(files, key=os.path.getsize)  # the array data
  with open(target, "r+b") as f:
    f.seek(os.path.getsize(target) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x01]))
  return os.path.relpath(target, step_dir)


def test_every_step_carries_checksums_and_restores_exactly(tmp_path):
  ckpt = _saved(tmp_path)
  assert os.path.exists(os.path.join(ckpt.directory, "2", ck.CHECKSUM_FILE))
  state, meta = ckpt.restore(_abstract())
  assert meta["data_position"] == 2 and np.array_equal(np.asarray(state["w"]), np.full((64, 8), 2.0))
  ckpt.close()


def test_a_flipped_byte_is_refused_naming_the_step_and_file(tmp_path):
  ckpt = _saved(tmp_path)
  name = _flip_a_byte(os.path.join(ckpt.directory, "2"))
  with pytest.raises(ck.CheckpointError, match=rf"checkpoint .*/2 is corrupt: {name} does not match its checksum"
                                               r".*available: \[1, 2\]"):
    ckpt.restore(_abstract())
  with pytest.raises(ck.CheckpointError, match="is corrupt"):
    ck.load_arrays(ckpt.directory)  # the host readers check too
  assert ckpt.latest_good_step() == 1
  state, meta = ckpt.restore(_abstract(), fall_back=True)  # the trainers' restore_earlier_if_corrupt
  assert meta["data_position"] == 1 and np.array_equal(np.asarray(state["b"]), np.arange(8.0) + 1)
  with pytest.raises(FloatingPointError, match="last good checkpoint is step 1 "):
    lp.check_finite({"loss": np.nan}, 3, ckpt)
  ckpt.close()


def test_a_step_without_checksums_restores_with_a_warning(tmp_path, caplog):
  ckpt = _saved(tmp_path, steps=(1,))
  os.remove(os.path.join(ckpt.directory, "1", ck.CHECKSUM_FILE))
  with caplog.at_level(logging.WARNING, logger="mtpo_jax.checkpoints"):
    _, meta = ckpt.restore(_abstract())
  assert meta["data_position"] == 1 and "restoring it unverified" in caplog.text
  ckpt.close()


def test_a_failed_save_leaves_no_temporary_directory(tmp_path, monkeypatch):
  ckpt = _saved(tmp_path, steps=(1,))

  def disk_full(step, args, force):  # orbax has begun its temporary directory when the disk fills
    os.makedirs(os.path.join(ckpt.directory, f"{step}.orbax-checkpoint-tmp-123", "state"))
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(ckpt._manager, "save", disk_full)
  with pytest.raises(ck.CheckpointError, match=r"saving step 2 to .* failed \(OSError: \[Errno 28\] No space left"
                                               r".*previous checkpoint \(step 1\) is intact"):
    ckpt.save(2, _state(2), {"data_position": 2})
  assert not glob.glob(os.path.join(ckpt.directory, "*orbax-checkpoint-tmp*"))
  monkeypatch.undo()
  _, meta = ckpt.restore(_abstract(), step=1)
  assert meta["data_position"] == 1
  ckpt.close()
