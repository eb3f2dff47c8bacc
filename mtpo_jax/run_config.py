"""The configuration a run directory records, written only once the job has accepted it.

`python -m mtpo_jax.main` writes the full Gin config into MODEL_DIR/config.gin. Two rules keep that file honest:

  * nothing is written before the whole configuration is accepted. The entrypoint only *registers* the config
    (`register`); the job calls `accept(model_dir)` once its settings, vocabulary and init checkpoint have passed
    their checks, just before it creates its first file (TrainLoop does it for every trainer, run_pipeline after
    the plan is built). A run refused for a bad setting leaves no directory, no config.gin and no TensorBoard
    file, and an existing run directory byte-identical;
  * a directory is not silently reused with another configuration. `check_rerun` compares the bindings with the
    config.gin already there and refuses with the changed bindings (a diff) unless the user passes
    --allow_config_change; then the previous file is kept as config.previous-N.gin.

Module state (one pending config per process) because the job is called by Gin, which passes only its bindings.
"""

from __future__ import annotations

import difflib
import logging
import os

from mtpo_jax import atomic_files

CONFIG_NAME = "config.gin"
# Bindings that say where a run lives, how its processes are laid out, or which part of it runs now, not what it
# computes: a run directory that was moved or copied, resumed on another number of processes (each process has its
# own run.process_id), or a pipeline rerun for some of its stages continues without the flag.
NOT_COMPARED = ("MODEL_DIR", "run.process_id", "run.num_processes", "run.coordinator_address", "run.distributed",
                "run.num_cpu_devices", "run_pipeline.only", "run_pipeline.max_parallel",
                "run_pipeline.compilation_cache")
log = logging.getLogger(__name__)
_pending: dict[str, str] = {}  # {absolute model_dir: config text} registered but not yet written


class ConfigChangedError(ValueError):
  """An existing run directory was started with other bindings."""
  multiline_message = True  # the changed bindings follow the error line (cli_errors.py)


def binding_lines(text: str) -> list[str]:
  """The bindings of a Gin config text, one statement per entry: comments and blank lines dropped, a value that
  Gin wrapped over several lines joined into one."""
  statements: list[str] = []
  for line in text.splitlines():
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
      continue
    if line[:1].isspace() and statements:  # a continuation of the previous statement's value
      statements[-1] += " " + stripped
    else:
      statements.append(stripped)
  return statements


def changed_bindings(old: str, new: str) -> list[str]:
  """`- binding` for each binding only in `old`, `+ binding` for each only in `new`, in file order (NOT_COMPARED
  bindings left out)."""
  compared = lambda text: [b for b in binding_lines(text) if b.split("=")[0].strip() not in NOT_COMPARED]
  diff = difflib.ndiff(compared(old), compared(new))
  return [f"{d[0]} {d[2:]}" for d in diff if d[:1] in "+-"]


def check_rerun(model_dir: str, config_text: str, allow_change: bool) -> None:
  """ConfigChangedError when MODEL_DIR/config.gin exists with other bindings than `config_text`, unless
  `allow_change`. Reads only."""
  path = os.path.join(model_dir, CONFIG_NAME)
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = f.read()
  changes = changed_bindings(old, config_text)
  if changes and not allow_change:
    shown = "\n".join(f"    {c}" for c in changes[:40]) + ("\n    ..." if len(changes) > 40 else "")
    raise ConfigChangedError(
        f"{path} was written by another configuration ({len(changes)} changed line(s)); rerun with "
        f"--allow_config_change to continue this run under the new one, or use a new MODEL_DIR:\n{shown}")


def register(model_dir: str, config_text: str) -> None:
  """Remembers `config_text` as MODEL_DIR's config, to be written by `accept`."""
  _pending[os.path.abspath(model_dir)] = config_text


def accept(directory: str) -> None:
  """Called by a job before it creates anything in or under `directory`: when a config is pending for it (or
  for a directory above it), creates the run directory and writes config.gin (atomically; a previous, different
  config.gin is kept as config.previous-N.gin). A no-op otherwise, and after the first call."""
  here = os.path.abspath(directory)
  for model_dir in [d for d in _pending if here == d or here.startswith(d + os.sep)]:
    text = _pending.pop(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_NAME)
    if os.path.exists(path):
      with open(path) as f:
        old = f.read()
      if changed_bindings(old, text):
        k = 1
        while os.path.exists(os.path.join(model_dir, f"config.previous-{k}.gin")):
          k += 1
        atomic_files.write_text(os.path.join(model_dir, f"config.previous-{k}.gin"), old)
        log.warning("%s: configuration changed (--allow_config_change); the previous one is config.previous-%d.gin",
                    model_dir, k)
    atomic_files.write_text(path, text)


def discard(model_dir: str) -> None:
  """Forgets a pending config (the job failed before accepting it)."""
  _pending.pop(os.path.abspath(model_dir), None)
