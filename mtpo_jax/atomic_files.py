"""Files written whole or not at all: a temporary file in the same directory, flushed, then renamed.

A process killed mid-write (kill -9, a full disk, a preemption) leaves the previous version of the file, or no
file, never half of one; a failed write removes its temporary file. Every result, config, table and plot the
project writes goes through here (checkpoints have their own protocol in checkpoints.py; metrics.jsonl is
append-only).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
  """Yields a temporary path next to `path`; when the block ends without error the temporary file becomes `path`
  (os.replace, atomic on POSIX), otherwise it is removed. For writers that want a path (savefig, np.savez)."""
  directory = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_bytes(path: str, data: bytes) -> None:
  """`data` at `path`, atomically (module docstring)."""
  with replacing(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
  """`text` (UTF-8) at `path`, atomically."""
  write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any, indent: int | None = 1) -> None:
  """`obj` as JSON at `path`, atomically; values JSON cannot hold are written as their str()."""
  write_text(path, json.dumps(obj, indent=indent, default=str))
