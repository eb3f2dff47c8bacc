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


# ONE JOB PER RUN DIRECTORY (launch.job_lock), AND STAGES THAT OUTLIVE THEIR PIPELINE

SFT = ["--gin_file=experiments/sft_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.batch_size=8",
       "--gin.LoopSettings.num_steps=1", "--gin.toy_teacher_task.num_train=16", "--gin.toy_teacher_task.num_eval=8",
       "--gin.train_sft.eval_batches=1", "--gin.train_sft.num_samples=0"]


def test_a_second_job_on_a_run_directory_refuses_in_one_line(tmp_path, capfd):
  from mtpo_jax import main
  d = str(tmp_path / "run")
  os.makedirs(d)
  with open(os.path.join(d, lock.JOB_LOCK_NAME), "w") as f:  # this live process holds it
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-05 10:00:00"}, f)
  assert main.cli([*SFT, f"--gin.MODEL_DIR='{d}'"]) == 1
  err = capfd.readouterr().err
  assert f"RunLockError: {d} is in use by the job with pid {os.getpid()} on host" in err and "Traceback" not in err
  assert sorted(os.listdir(d)) == [lock.JOB_LOCK_NAME]  # nothing was written, the holder's lock kept


def test_a_killed_jobs_lock_is_taken_over_and_released_at_the_end(tmp_path, caplog):
  import logging
  from mtpo_jax import main
  d = str(tmp_path / "run")
  os.makedirs(d)
  with open(os.path.join(d, lock.JOB_LOCK_NAME), "w") as f:
    json.dump({"pid": _dead_pid(), "host": socket.gethostname(), "started": "2026-12-05 10:00:00"}, f)
  with caplog.at_level(logging.WARNING):
    assert main.cli([*SFT, f"--gin.MODEL_DIR='{d}'"]) == 0
  assert "[job] taking over the stale lock" in caplog.text
  assert lock.JOB_LOCK_NAME not in os.listdir(d) and "checkpoints" in os.listdir(d)


def test_a_refused_job_leaves_no_directory(tmp_path):
  from mtpo_jax import main
  d = tmp_path / "never"
  assert main.cli([*SFT, f"--gin.MODEL_DIR='{d}'", "--gin.LoopSettings.num_steps=0"]) == 1
  assert not d.exists()


ORPHAN = """
import os, signal, subprocess, sys, time
out = sys.argv[1]
if sys.argv[2] == "parent":  # starts the stage, then dies at once as if killed -9
  subprocess.Popen([sys.executable, __file__, out, str(os.getpid())], start_new_session=True)
  time.sleep(1.0)
  os.kill(os.getpid(), signal.SIGKILL)
else:
  from mtpo_jax import launch
  signal.signal(signal.SIGTERM, lambda *a: (open(os.path.join(out, "stopped"), "w").close(), sys.exit(75)))
  launch.watch_parent(int(sys.argv[2]), period_s=0.1)  # the pid the pipeline passes in MTPO_PIPELINE_PID
  open(os.path.join(out, "started"), "w").close()
  time.sleep(120)
"""


def test_a_stage_whose_pipeline_was_killed_stops_on_its_own(tmp_path):
  """kill -9 cannot be forwarded: the stage notices its parent is gone and stops (a trainer saves first)."""
  import time
  script = tmp_path / "orphan.py"
  script.write_text(ORPHAN)
  parent = subprocess.run([sys.executable, str(script), str(tmp_path), "parent"], timeout=120)
  assert parent.returncode == -9
  deadline = time.time() + 60
  while not (tmp_path / "stopped").exists():
    assert time.time() < deadline, "the orphaned stage kept running"
    time.sleep(0.1)
  assert (tmp_path / "started").exists()


def test_the_runner_waits_for_a_stage_left_running_by_a_killed_pipeline(tmp_path):
  from mtpo_jax.pipeline import stages
  out = tmp_path / "run"
  import threading
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
  threading.Thread(target=holder.wait, daemon=True).start()  # reaped when it exits (no zombie holding the pid)
  os.makedirs(out / "train")
  with open(out / "train" / lock.JOB_LOCK_NAME, "w") as f:
    json.dump({"pid": holder.pid, "host": socket.gethostname(), "started": "2026-12-05 10:00:00"}, f)
  said = []
  graph = [stages.Stage("train", command=(sys.executable, "-c", "pass"))]
  stages.Runner(str(out), poll_seconds=0.05, echo=said.append, stop_grace_s=60).run(graph)
  assert any("still running as pid" in s for s in said) and os.path.exists(out / "train" / "STAGE_DONE.json")
  started = [s for s in said if s.startswith("[pipeline]") and "start train" in s]
  assert len(started) == 1
