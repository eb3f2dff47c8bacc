"""The skeleton every trainer is written on: SFT, the learned judges, RL and Iterative PPO.

`TrainLoop` owns what each of them needs around its pure step, once:
  setup      the run directory, the vocabulary check, the partitioner on the configured mesh;
  resume     a Checkpointer, and `restore` that refuses a checkpoint written by another setup (its fingerprint);
  progress   the metrics writer (JSONL + TensorBoard, process 0) and the progress bar;
  safety     `check_finite`, which stops a run on a non-finite value before anything is saved over the last
             good checkpoint;
  preemption SIGTERM (what a scheduler sends before preempting) and SIGINT are caught: the loop finishes the
             step it is in, saves a checkpoint at that step, logs one line and raises `Preempted`, which the
             entrypoint turns into exit status PREEMPTED_EXIT_STATUS; rerunning the same command resumes exactly;
  cleanup    leaving the `with` block closes the bar, finishes pending checkpoint writes and closes the writer,
             whether the loop ended or raised.
`run_steps` is the fixed-step loop of the supervised trainers (SFT and the judges): step, log, evaluate, save.
Plain arguments; Gin binds `LoopSettings` (gin_registry.py).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
from typing import Any, Callable, Iterable

import jax
import numpy as np

from mtpo_jax import atomic_files, partitioning, run_config
from mtpo_jax.checkpoints import Checkpointer, CheckpointError, restore_target
from mtpo_jax.models.config import T5Config
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.training.metrics import MetricsWriter, progress

log = logging.getLogger(__name__)
# EX_TEMPFAIL: "try again later". Distinct from 0 (done) and 1 (failed), so a scheduler can requeue on it.
PREEMPTED_EXIT_STATUS = 75
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """The run stopped on SIGTERM/SIGINT after saving `step` (None: nothing new to save, e.g. an Iterative PPO
  phase abandoned mid-way; the rerun redoes that phase)."""

  def __init__(self, message: str, step: int | None):
    super().__init__(message)
    self.step = step


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How long a trainer runs and how often it logs, evaluates and saves.

  num_steps: optimizer steps (SFT, judges) or outer iterations (RL, Iterative PPO). batch_size: examples per step
  (SFT, judges) or contexts per iteration (RL). eval_every / save_every / log_every: in the same unit (RL and
  Iterative PPO log every iteration). keep_checkpoints: the newest this many are kept. seed: every random draw of
  the run (initialisation, data order, sampling keys) is derived from it. restore_earlier_if_corrupt: when the
  newest checkpoint fails its checksums, resume from the newest one that verifies instead of stopping."""
  num_steps: int = 1000
  batch_size: int = 32
  log_every: int = 10
  eval_every: int = 200
  save_every: int = 500
  keep_checkpoints: int = 3
  seed: int = 0
  restore_earlier_if_corrupt: bool = False

  def __post_init__(self):
    for name in ("num_steps", "batch_size", "log_every", "eval_every", "save_every", "keep_checkpoints"):
      if getattr(self, name) < 1:
        raise ValueError(f"LoopSettings.{name} must be >= 1, got {getattr(self, name)}")


def write_json(path: str, obj: Any) -> None:
  """`obj` as JSON at `path`, written by process 0 only, to a temporary file and renamed (never half a file)."""
  if jax.process_index() == 0:
    atomic_files.write_json(path, obj)


def check_fingerprint(meta: dict[str, Any], fingerprint: dict[str, Any], directory: str) -> None:
  """CheckpointError unless the checkpoint metadata holds every entry of `fingerprint` with the same value."""
  want = json.loads(json.dumps(fingerprint, default=str))
  mismatch = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
  if mismatch:
    raise CheckpointError(f"{directory} was written by a different run (saved vs now: {mismatch}); use a new "
                          "MODEL_DIR")


def check_finite(metrics: dict[str, Any], step: int, ckpt: Checkpointer,
                 watched: Iterable[str] | None = ("loss", "grad_norm", "update_norm")) -> dict[str, float]:
  """Host floats of `metrics`; FloatingPointError (raised before anything is saved) if a `watched` value (None:
  every value) is not finite. The message names the last good checkpoint."""
  values = {k: float(np.asarray(v)) for k, v in metrics.items()}
  seen = values if watched is None else {k: values[k] for k in watched if k in values}
  if not all(np.isfinite(v) for v in seen.values()):
    what = "metrics" if watched is None else "loss/grad/update"
    shown = {k: v for k, v in seen.items() if not np.isfinite(v)} if watched is None else seen
    raise FloatingPointError(f"non-finite {what} at step {step} ({shown}); nothing was saved; the last good "
                             f"checkpoint is step {ckpt.latest_good_step()} in {ckpt.directory}")
  return values


class TrainLoop:
  """The setup, resume, metrics and cleanup of one trainer run (module docstring). Use as a context manager;
  `start` opens the metrics writer and progress bar once the state is ready."""

  def __init__(self, model_dir: str, mesh_spec: partitioning.MeshSpec, *, save_every: int, keep_checkpoints: int,
               vocab: Vocabulary | None = None, model_config: T5Config | None = None, fall_back: bool = False):
    if vocab is not None and model_config is not None:
      vocab.check_fits(model_config.vocab_size)
    self.model_dir = model_dir
    self.partitioner = partitioning.Partitioner(partitioning.make_mesh(mesh_spec), mesh_spec.rules)
    self._checkpoint_args = (save_every, keep_checkpoints)
    self.fall_back = fall_back
    self._ckpt: Checkpointer | None = None
    self.writer: MetricsWriter | None = None
    self.bar = None
    self._signal: int | None = None
    self._peer_stop = False  # another process was signalled (several processes agree in stop_requested)
    self._previous_handlers: dict[int, Any] = {}

  @property
  def ckpt(self) -> Checkpointer:
    """The run's Checkpointer, created (with MODEL_DIR/checkpoints) on first use: a trainer that fails its checks
    before touching it leaves no checkpoint directory behind."""
    if self._ckpt is None:
      run_config.accept(self.model_dir)
      os.makedirs(self.model_dir, exist_ok=True)
      self._ckpt = Checkpointer(os.path.join(self.model_dir, "checkpoints"), *self._checkpoint_args)
    return self._ckpt

  def __enter__(self) -> "TrainLoop":
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread only
      for sig in _STOP_SIGNALS:
        self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
    return self

  def _on_signal(self, signum, frame) -> None:
    if self._signal is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now, without saving
      raise KeyboardInterrupt
    self._signal = signum
    log.warning("received %s: stopping after the current step with a checkpoint", signal.Signals(signum).name)

  def stop_requested(self) -> bool:
    """Whether SIGTERM/SIGINT arrived. With several processes every process must call this at the same step:
    the processes agree (any process signalled stops all of them at this step; the documented equivalent of
    multihost_utils.reached_preemption_sync_point, which needs JAX's own preemption notifier)."""
    stop = self._signal is not None
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      anyone = bool(np.asarray(multihost_utils.process_allgather(np.int32(stop))).max())
      self._peer_stop = anyone and not stop
      stop = anyone
    return stop

  def preempt(self, step: int | None, state: Any = None, meta: dict[str, Any] | None = None) -> None:
    """Saves `state` at `step` (unless None or already saved), logs one line and raises Preempted."""
    if step is not None and state is not None:
      self.ckpt.save(step, state, meta or {}, force=True)
      self.ckpt.wait()
      where = f"saved step {step} in {self.ckpt.directory}"
    else:
      where = f"the last checkpoint is step {self.ckpt.latest_step()} in {self.ckpt.directory}"
    name = (signal.Signals(self._signal).name if self._signal
            else "a signal to another process" if self._peer_stop else "a stop request")
    message = f"stopped by {name}: {where}; rerun the same command to resume"
    log.warning(message)
    raise Preempted(message, step)

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous_handlers.items():
      signal.signal(sig, handler)
    if self.bar is not None:
      self.bar.close()
    if self._ckpt is not None:
      self._ckpt.close()
    if self.writer is not None:
      self.writer.close()

  def restore(self, abstract: Any, shardings: Any, fingerprint: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """(state, meta) of the latest checkpoint, restored into `shardings`, or None when there is none yet;
    CheckpointError when it was written by another setup (`check_fingerprint`)."""
    if self.ckpt.latest_step() is None:
      return None
    state, meta = self.ckpt.restore(restore_target(abstract, shardings), fall_back=self.fall_back)
    check_fingerprint(meta, fingerprint, self.ckpt.directory)
    log.info("resumed from %s at step %s", self.ckpt.directory, meta.get("data_position", meta.get("iteration")))
    return state, meta

  def start(self, total: int, initial: int, desc: str) -> None:
    run_config.accept(self.model_dir)
    self.writer = MetricsWriter(self.model_dir)
    self.bar = progress(total, initial=initial, desc=desc)

  def write(self, step: int, metrics: dict[str, Any], prefix: str = "train") -> dict[str, float]:
    return self.writer.write(step, metrics, prefix=prefix)

  def check_finite(self, metrics: dict[str, Any], step: int,
                   watched: Iterable[str] | None = ("loss", "grad_norm", "update_norm")) -> dict[str, float]:
    return check_finite(metrics, step, self.ckpt, watched)

  def save(self, step: int, state: Any, meta: dict[str, Any], final: bool = False) -> bool:
    return self.ckpt.save(step, state, meta, force=final)


def run_steps(loop: TrainLoop, state: Any, step_fn: Callable[[Any, int], tuple[Any, Any]], *, start: int,
              settings: LoopSettings, meta: dict[str, Any], evaluate: Callable[[Any], dict[str, float]] | None,
              postfix: Callable[[dict[str, float]], dict[str, str]], evaluate_last: bool = True,
              derived: Callable[[dict[str, float], int], dict[str, float]] | None = None
              ) -> tuple[Any, dict[str, float]]:
  """Steps `start` .. settings.num_steps of a supervised trainer: `step_fn(state, step)` -> (state, metrics);
  every log_every (and at save points and the end) the metrics are checked finite, extended by `derived(metrics,
  step)` (e.g. throughput) and written; every eval_every
  (and at the end unless `evaluate_last` is False) `evaluate(state)` is written under "eval"; the state is saved
  every save_every and at the end with `meta` plus the data position. Returns (state, the last train metrics
  with the eval metrics prefixed eval_)."""
  last: dict[str, float] = {}
  end = settings.num_steps
  for step in range(start, end):
    state, metrics = step_fn(state, step)
    done = step + 1
    if done % settings.log_every == 0 or loop.ckpt.should_save(done) or done == end:
      last = loop.check_finite(jax.device_get(metrics), done)
      if derived is not None:
        last.update(derived(last, done))
      loop.write(done, last)
      loop.bar.set_postfix(**postfix(last))
    if evaluate is not None and (done % settings.eval_every == 0 and (evaluate_last or done != end)
                                 or (done == end and evaluate_last)):
      ev = loop.write(done, evaluate(state), prefix="eval")
      last.update({f"eval_{k}": v for k, v in ev.items()})
    loop.save(done, state, {"data_position": done, **meta}, final=done == end)
    loop.bar.update(1)
    if done < end and loop.stop_requested():
      loop.preempt(done, state, {"data_position": done, **meta})
  return state, last
