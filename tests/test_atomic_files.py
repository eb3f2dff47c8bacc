"""atomic_files.py: a write either replaces the whole file or leaves the previous version, and never leaves its
temporary file behind."""

import json
import os

import numpy as np
import pytest

from mtpo_jax import atomic_files


def test_writes_whole_files(tmp_path):
  p = str(tmp_path / "out.json")
  atomic_files.write_json(p, {"a": 1, "when": np.float32(0.5).dtype})
  assert json.load(open(p)) == {"a": 1, "when": "float32"}
  atomic_files.write_text(p, "second")
  assert open(p).read() == "second" and os.listdir(tmp_path) == ["out.json"]


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
  p = str(tmp_path / "results.md")
  atomic_files.write_text(p, "previous")

  def disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(os, "replace", disk_full)
  with pytest.raises(OSError, match="No space left"):
    atomic_files.write_text(p, "new and longer text")
  assert open(p).read() == "previous" and os.listdir(tmp_path) == ["results.md"]


def test_a_writer_that_raises_midway_leaves_nothing(tmp_path):
  p = str(tmp_path / "plot.png")
  with pytest.raises(RuntimeError):
    with atomic_files.replacing(p) as tmp:
      with open(tmp, "wb") as f:
        f.write(b"half a png")
      raise RuntimeError("matplotlib died")
  assert os.listdir(tmp_path) == []
