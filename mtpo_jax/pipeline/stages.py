"""A resumable graph of stages, each writing one output directory.

A stage is either a command (a `python -m mtpo_jax.main ...` or evaluation process, its output in
`<dir>/stage.log`) or an in-process action (data writing, vocabulary, tables). When a stage finishes it writes
`<dir>/STAGE_DONE.json` holding its fingerprint (what defines its output: the command line without the
interpreter path, or the action's arguments), its wall time and a summary. On the next run:

  marker present, same fingerprint   -> skipped
  marker present, other fingerprint  -> StageConfigError naming the stage and what changed (nothing is deleted)
  no marker                          -> run; a trainer killed mid-stage resumes from its own checkpoints

so a killed pipeline continues where it stopped. Up to `max_parallel` ready stages run at once; after a failure
no new stage starts, the running ones finish, and StageFailed names the stage and the tail of its log.

Each stage process runs in its own process group. SIGTERM or SIGINT to the pipeline is forwarded as SIGTERM to
every running stage's group (a trainer then saves a checkpoint at its current step and exits); the pipeline waits
for them to exit and raises PipelineStopped. The next run resumes the interrupted stages from their checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Sequence

from mtpo_jax import atomic_files
from mtpo_jax.pipeline import lock
from mtpo_jax.training.loop import Preempted

log = logging.getLogger(__name__)
MARKER = "STAGE_DONE.json"
LOG_NAME = "stage.log"
PARENT_PID_ENV = "MTPO_PIPELINE_PID"  # a stage's job stops (saving a checkpoint) when this process is gone


class StageConfigError(RuntimeError):
  """A completed stage was asked to run with another configuration."""
  multiline_message = True  # the saved and the new configuration follow the error line (cli_errors.py)


class StageFailed(RuntimeError):
  """A stage's command exited non-zero or its action raised."""
  multiline_message = True  # each failed stage's log tail follows the error line (cli_errors.py)


class PipelineStopped(Preempted):
  """SIGTERM/SIGINT stopped the pipeline; its running stages were stopped and waited for."""



@dataclasses.dataclass(frozen=True)
class Stage:
  """name: unique, also the output directory relative to the run directory ("education/rl/mtpo/seed0");
  deps: names that must finish first; command: argv of a subprocess (argv[0] is the interpreter), or
  action(out_dir) -> summary dict, run in process; params: the action's fingerprint; copy_in: (src, dst) files
  copied before the stage runs when src exists and dst does not (shared caches between stages)."""
  name: str
  deps: tuple[str, ...] = ()
  command: tuple[str, ...] | None = None
  action: Callable[[str], dict] | None = None
  params: dict = dataclasses.field(default_factory=dict)
  copy_in: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    if (self.command is None) == (self.action is None):
      raise ValueError(f"stage {self.name!r} needs exactly one of command and action")

  def fingerprint(self) -> dict[str, Any]:
    if self.command is not None:
      return {"command": list(self.command[1:])}
    return {"action": self.name, "params": self.params}


def check_graph(stages: Sequence[Stage]) -> None:
  """Unique names, known dependencies, listed after what they depend on (so the graph has no cycle)."""
  seen: set[str] = set()
  for s in stages:
    if s.name in seen:
      raise ValueError(f"stage {s.name!r} appears twice")
    missing = [d for d in s.deps if d not in seen]
    if missing:
      raise ValueError(f"stage {s.name!r} depends on {missing}, which are unknown or listed after it")
    seen.add(s.name)


def read_marker(out_dir: str) -> dict | None:
  path = os.path.join(out_dir, MARKER)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise StageConfigError(f"{path} is unreadable ({e}); delete it to rerun the stage") from e


def is_complete(stage: Stage, out_dir: str) -> bool:
  """True if `out_dir` holds this stage's marker; StageConfigError if it holds another configuration's."""
  marker = read_marker(out_dir)
  if marker is None:
    return False
  want, have = stage.fingerprint(), marker.get("fingerprint")
  if have != want:
    raise StageConfigError(
        f"stage {stage.name!r} in {out_dir} was completed with another configuration:\n  was: {json.dumps(have)}\n"
        f"  now: {json.dumps(want)}\nuse a new run directory, or delete {out_dir} to rerun this stage")
  return True


def write_marker(stage: Stage, out_dir: str, seconds: float, summary: dict) -> None:
  atomic_files.write_json(os.path.join(out_dir, MARKER), {
      "stage": stage.name, "fingerprint": stage.fingerprint(), "seconds": round(seconds, 1),
      "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "summary": summary})


def _tail(path: str, lines: int = 25) -> str:
  try:
    with open(path, errors="replace") as f:
      text = f.read()[-20000:]
  except OSError:
    return "(no log)"
  # progress bars rewrite one line with carriage returns; keep the last state of each line
  return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-lines:])


class Runner:
  """Runs a stage graph under `run_dir` (see the module docstring); `timings` maps stage -> seconds run now."""

  def __init__(self, run_dir: str, max_parallel: int = 1, poll_seconds: float = 0.5,
               echo: Callable[[str], None] = print, env: dict[str, str] | None = None, stop_grace_s: float = 300.0):
    if max_parallel < 1:
      raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    self.run_dir, self.max_parallel, self.poll_seconds, self.echo = run_dir, max_parallel, poll_seconds, echo
    self.stop_grace_s = stop_grace_s
    self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    self.timings: dict[str, float] = {}
    self.skipped: list[str] = []

  def out_dir(self, stage: Stage) -> str:
    return os.path.join(self.run_dir, stage.name)

  def run(self, stages: Sequence[Stage]) -> None:
    check_graph(stages)
    done = set()
    for s in stages:  # fail on a changed configuration before any work starts
      if is_complete(s, self.out_dir(s)):
        done.add(s.name)
        self.skipped.append(s.name)
    if self.skipped:
      self.echo(f"[pipeline] {len(self.skipped)} of {len(stages)} stages already complete; skipping them")
    pending = [s for s in stages if s.name not in done]
    running: dict[str, tuple[Stage, subprocess.Popen, float, Any]] = {}
    failures: list[str] = []
    t_start = time.time()
    stop: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.append(signum))
    try:
      self._loop(pending, running, failures, done, t_start, stop)
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)
    if failures:
      raise StageFailed("\n\n".join(failures))

  def _stop(self, running: dict, signum: int) -> None:
    """SIGTERM to every running stage's process group; waits for them (SIGKILL after stop_grace_s)."""
    name = signal.Signals(signum).name
    self.echo(f"[pipeline] received {name}: stopping {sorted(running) or 'no running stage'}")
    for _, proc, _, _ in running.values():
      with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + self.stop_grace_s
    for stage, proc, _, handle in running.values():
      try:
        proc.wait(timeout=max(deadline - time.time(), 0.1))
      except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
          os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
      handle.close()
    stopped = sorted(running)
    running.clear()
    raise PipelineStopped(f"stopped by {name}: stages {stopped} were stopped and resume from their checkpoints "
                          "on the next run of the same command", None)

  def _loop(self, pending: list, running: dict, failures: list, done: set, t_start: float, stop: list) -> None:
    while pending or running:
      if stop:
        self._stop(running, stop[0])
      for name, (stage, proc, t0, handle) in list(running.items()):
        if proc.poll() is None:
          continue
        handle.close()
        del running[name]
        if proc.returncode == 0:
          self._finish(stage, time.time() - t0, {"returncode": 0}, done, t_start)
        else:
          log_path = os.path.join(self.out_dir(stage), LOG_NAME)
          failures.append(f"stage {name!r} exited with status {proc.returncode}; log {log_path}, last lines:\n"
                          f"{_tail(log_path)}")
          self.echo(f"[pipeline] FAILED {name} (status {proc.returncode}); see {log_path}")
      if not failures:
        for stage in [s for s in pending if all(d in done for d in s.deps)]:
          if len(running) >= self.max_parallel:
            break
          pending.remove(stage)
          started = self._start(stage, done, t_start, failures)
          if started is not None:
            running[stage.name] = started
      elif not running:
        break
      if not failures and pending and not running and not any(all(d in done for d in s.deps) for s in pending):
        raise StageFailed(f"stages {[s.name for s in pending]} can never start (a dependency did not finish)")
      if running:
        time.sleep(self.poll_seconds)

  def _start(self, stage: Stage, done: set, t_start: float, failures: list):
    out = self.out_dir(stage)
    os.makedirs(out, exist_ok=True)
    for src, dst in stage.copy_in:
      if os.path.exists(src) and not os.path.exists(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.copyfile(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
    self.echo(f"[pipeline] {self._clock(t_start)} start {stage.name}")
    t0 = time.time()
    if stage.action is not None:
      try:
        summary = stage.action(out) or {}
      except Exception as e:  # noqa: BLE001 - reported with the stage's name, the run stops cleanly
        failures.append(f"stage {stage.name!r} raised {type(e).__name__}: {e}")
        self.echo(f"[pipeline] FAILED {stage.name}: {type(e).__name__}: {e}")
        return None
      self._finish(stage, time.time() - t0, summary, done, t_start)
      return None
    self._wait_for_orphan(stage, out)
    handle = open(os.path.join(out, LOG_NAME), "a")
    handle.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(stage.command)}\n")
    handle.flush()
    env = {**self.env, PARENT_PID_ENV: str(os.getpid())}
    proc = subprocess.Popen(list(stage.command), stdout=handle, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: signals reach it through us
    return stage, proc, t0, handle

  def _wait_for_orphan(self, stage: Stage, out: str) -> None:
    """Waits while a live process still holds the stage's JOB.lock: the stage of a pipeline that was killed,
    which stops on its own (launch.watch_parent) after saving its checkpoint. Starting now would run it twice."""
    holder = lock.live_holder(out)
    if holder is None:
      return
    self.echo(f"[pipeline] {stage.name} is still running as pid {holder['pid']} (left by a stopped pipeline); "
              "waiting for it to save and exit")
    deadline = time.time() + self.stop_grace_s
    while lock.live_holder(out) is not None:
      if time.time() > deadline:
        raise StageFailed(f"stage {stage.name!r} is still running as pid {holder['pid']} after "
                          f"{self.stop_grace_s:.0f} s; stop it (kill {holder['pid']}) and rerun")
      time.sleep(0.2)

  def _finish(self, stage: Stage, seconds: float, summary: dict, done: set, t_start: float) -> None:
    write_marker(stage, self.out_dir(stage), seconds, summary)
    done.add(stage.name)
    self.timings[stage.name] = seconds
    self.echo(f"[pipeline] {self._clock(t_start)} done  {stage.name} ({seconds:.0f} s)")

  @staticmethod
  def _clock(t_start: float) -> str:
    s = int(time.time() - t_start)
    return f"{s // 60:3d}:{s % 60:02d}"


def main_command(gin_files: Sequence[str], bindings: Sequence[str], python: str = sys.executable) -> tuple[str, ...]:
  """argv of `python -m mtpo_jax.main` with these Gin files and bindings."""
  return (python, "-m", "mtpo_jax.main", *[f"--gin_file={f}" for f in gin_files],
          *[f"--gin_bindings={b}" for b in bindings])
