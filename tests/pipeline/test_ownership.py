"""One pipeline per run directory (pipeline/lock.py): a second run refuses naming the holder, a stale lock (its
pid gone) is taken over with a message, a lock from another host is never taken, the lock goes when the run ends,
run_pipeline takes it before any stage runs, and SIGTERM to the pipeline stops its stages and waits for them."""

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


RUNNER = """
import sys
from mtpo_jax.pipeline import stages
out = sys.argv[1]
child = ("import os, signal, sys, time\\n"
         "def term(signum, frame):\\n"
         "  open(os.path.join(sys.argv[1], 'got_sigterm'), 'w').close()\\n"
         "  sys.exit(75)\\n"
         "signal.signal(signal.SIGTERM, term)\\n"
         "open(os.path.join(sys.argv[1], 'pid'), 'w').write(str(os.getpid()))\\n"
         "time.sleep(120)\\n")
graph = [stages.Stage("slow", command=(sys.executable, "-c", child, out))]
try:
  stages.Runner(out, poll_seconds=0.1).run(graph)
except stages.PipelineStopped as e:
  print("STOPPED", e, flush=True)
  sys.exit(75)
"""


def test_sigterm_to_the_pipeline_stops_its_stages_and_waits(tmp_path):
  """The stage runs in its own process group; SIGTERM to the pipeline reaches it through the runner, which waits
  for it before exiting; no stage process survives the pipeline."""
  import signal
  import time
  out = str(tmp_path)
  runner = subprocess.Popen([sys.executable, "-c", RUNNER, out], stdout=subprocess.PIPE, text=True)
  pid_file = os.path.join(out, "pid")
  deadline = time.time() + 120
  while not os.path.exists(pid_file) or not open(pid_file).read():
    assert time.time() < deadline and runner.poll() is None, "the stage never started"
    time.sleep(0.05)
  stage_pid = int(open(pid_file).read())
  assert os.getpgid(stage_pid) != os.getpgid(runner.pid)  # its own process group
  runner.send_signal(signal.SIGTERM)
  stdout, _ = runner.communicate(timeout=120)
  assert runner.returncode == 75 and "STOPPED stopped by SIGTERM: stages ['slow']" in stdout
  assert os.path.exists(os.path.join(out, "got_sigterm"))  # the stage saw SIGTERM and exited on its own
  with pytest.raises(ProcessLookupError):
    os.kill(stage_pid, 0)  # and it is gone (waited for, not orphaned)
  assert not os.path.exists(os.path.join(out, "slow", "STAGE_DONE.json"))  # the next run reruns it
