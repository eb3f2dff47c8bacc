"""One process per run directory: `run_lock(run_dir)` holds MODEL_DIR/PIPELINE.lock while a pipeline's graph runs,
and `run_lock(run_dir, name=JOB_LOCK_NAME, what="job")` holds MODEL_DIR/JOB.lock while any job of
`python -m mtpo_jax.main` runs (launch.run_job), so two trainers never share a run directory.

The lock file is created with O_EXCL and names its holder (pid, host, start time). A second pipeline on the same
directory refuses with one line naming the holder. A lock whose holder is gone (same host, no such pid) is stale:
it is taken over, with a line saying so. A lock from another host cannot be checked from here, so it is never
taken over automatically; the message says which file to delete once that run is known to be gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Callable, Iterator

LOCK_NAME = "PIPELINE.lock"
JOB_LOCK_NAME = "JOB.lock"


class RunLockError(RuntimeError):
  """Another pipeline or job holds the run directory."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


def _read(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def live_holder(run_dir: str, name: str = JOB_LOCK_NAME) -> dict | None:
  """The holder ({pid, host, started}) of `run_dir`/`name` when it is a live process on this host, else None."""
  holder = _read(os.path.join(run_dir, name))
  pid = holder.get("pid")
  if holder.get("host") == socket.gethostname() and isinstance(pid, int) and _alive(pid):
    return holder
  return None


@contextlib.contextmanager
def run_lock(run_dir: str, echo: Callable[[str], None] = print, name: str = LOCK_NAME,
             what: str = "pipeline") -> Iterator[str]:
  """Holds `run_dir`/`name` for the block (module docstring); yields the lock's path."""
  os.makedirs(run_dir, exist_ok=True)
  path = os.path.join(run_dir, name)
  me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
  except FileExistsError:
    holder = _read(path)
    pid, host = holder.get("pid"), holder.get("host")
    if host == me["host"] and isinstance(pid, int) and not _alive(pid):
      echo(f"[{what}] taking over the stale lock {path} of pid {pid} on {host} (that process is gone)")
      tmp = f"{path}.{me['pid']}.tmp"
      with open(tmp, "w") as f:
        json.dump(me, f)
      os.replace(tmp, path)
    else:
      raise RunLockError(f"{run_dir} is in use by the {what} with pid {pid} on host {host} (since "
                         f"{holder.get('started')}); wait for it to finish or stop it, or delete {path} if that "
                         "run is gone") from None
  else:
    with os.fdopen(fd, "w") as f:
      json.dump(me, f)
  try:
    yield path
  finally:
    if _read(path).get("pid") == me["pid"]:
      os.remove(path)
