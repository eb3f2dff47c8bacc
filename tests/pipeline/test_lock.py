"""One pipeline per run directory (pipeline/lock.py): a second run refuses naming the holder, a stale lock (its
pid gone) is taken over with a message, a lock from another host is never taken, the lock goes when the run ends,
and run_pipeline takes it before any stage runs."""

import json
import os
import socket
import subprocess
import sys

import pytest

from mtpo_jax.pipeline import lock, plan
from mtpo_jax.pipeline.run import run_pipeline


def _write(run_dir, pid, host):
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, lock.LOCK_NAME), "w") as f:
    json.dump({"pid": pid, "host": host, "started": "2026-12-05 10:00:00"}, f)


def _dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_second_run_refuses_naming_the_holder(tmp_path):
  d = str(tmp_path)
  with lock.run_lock(d, echo=lambda m: None) as path:
    held = json.load(open(path))
    assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    with pytest.raises(lock.RunLockError, match=f"in use by the pipeline with pid {os.getpid()} on host "):
      with lock.run_lock(d):
        pass
    assert json.load(open(path)) == held  # the refused run did not touch the holder's lock
  assert not os.path.exists(path)  # released at the end


def test_stale_lock_is_taken_over_with_a_message(tmp_path):
  d, said = str(tmp_path), []
  dead = _dead_pid()
  _write(d, dead, socket.gethostname())
  with lock.run_lock(d, echo=said.append) as path:
    assert json.load(open(path))["pid"] == os.getpid()
  assert said and f"stale lock {path} of pid {dead}" in said[0]
  assert not os.path.exists(path)


def test_a_lock_from_another_host_is_never_taken(tmp_path):
  d = str(tmp_path)
  _write(d, _dead_pid(), "another-host")
  with pytest.raises(lock.RunLockError, match="on host another-host .* delete .*PIPELINE.lock"):
    with lock.run_lock(d):
      pass
  assert json.load(open(os.path.join(d, lock.LOCK_NAME)))["host"] == "another-host"


def test_run_pipeline_refuses_before_any_stage(tmp_path):
  d = str(tmp_path / "run")
  _write(d, os.getpid(), socket.gethostname())  # this live process holds it
  with pytest.raises(lock.RunLockError, match="in use by the pipeline"):
    run_pipeline(d, plan_config=plan.PlanConfig(education_methods=("sft",), negotiation_methods=("sft",)),
                 only=["data"])
  assert sorted(os.listdir(d)) == [lock.LOCK_NAME]  # the data stage never ran
