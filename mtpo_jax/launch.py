"""How one configured job runs: process set-up (jax.distributed on TPU pods and GPU hosts, the CPU device count of
the fake test meshes), the full config written into MODEL_DIR once the job accepts it (run_config.py) and the
operative one after it.
Registered with Gin as `run` (gin_registry.py); `mtpo_jax.main` calls it after parsing the Gin files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Callable, Iterator

import gin

from mtpo_jax import atomic_files, run_config
from mtpo_jax.pipeline import lock, stages


def run_job(job: Callable[[], object] = gin.REQUIRED, model_dir: str = gin.REQUIRED,
            distributed: bool = False, coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, num_cpu_devices: int | None = None,
            allow_config_change: bool = False) -> object:
  """Initialises jax.distributed when asked (TPU pods and GPU hosts), then runs the configured job.

  `num_cpu_devices` splits the host CPU into that many XLA devices (the fake meshes used in tests).
  `allow_config_change` (the entrypoint's --allow_config_change, never a Gin binding: it would be part of the
  config it compares) lets an existing MODEL_DIR continue under other bindings (run_config.py). Nothing is written
  into MODEL_DIR until the job accepts its configuration (run_config.accept).
  """
  import jax
  if num_cpu_devices:
    try:
      jax.config.update("jax_num_cpu_devices", num_cpu_devices)
    except RuntimeError:  # JAX already started in this process (a test session, a notebook)
      have = len(jax.devices("cpu"))
      if have != num_cpu_devices:
        raise RuntimeError(f"run.num_cpu_devices = {num_cpu_devices}, but JAX already started with {have} CPU "
                           "devices in this process; set it before any JAX operation (or XLA_FLAGS="
                           f"--xla_force_host_platform_device_count={num_cpu_devices})") from None
  if distributed:
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    from mtpo_jax import distributed as dist
    logging.getLogger(__name__).info("jax.distributed: %s", dist.describe())
  primary = jax.process_index() == 0
  with contextlib.ExitStack() as stack:
    if primary:
      stack.enter_context(job_lock(model_dir))
    config_text = gin.config_str()
    run_config.check_rerun(model_dir, config_text, allow_config_change)
    if primary:
      run_config.register(model_dir, config_text)
    parent = os.environ.pop(stages.PARENT_PID_ENV, "")  # popped: a process this job starts has another parent
    if parent:
      watch_parent(int(parent))
    try:
      result = job()
    finally:
      run_config.discard(model_dir)
    if primary:
      run_config.accept(model_dir)  # a job that wrote nothing still records what it ran
      atomic_files.write_text(os.path.join(model_dir, "operative_config.gin"), gin.operative_config_str())
  return result


@contextlib.contextmanager
def job_lock(model_dir: str) -> Iterator[None]:
  """MODEL_DIR/JOB.lock for the job (pipeline/lock.py): a second job on the same directory refuses with one line
  naming the holder; a lock left by a killed job is taken over. A job that fails before writing anything leaves
  no directory behind."""
  created = not os.path.exists(model_dir)
  try:
    with lock.run_lock(model_dir, echo=logging.getLogger(__name__).warning, name=lock.JOB_LOCK_NAME, what="job"):
      yield
  finally:
    if created and os.path.isdir(model_dir) and not os.listdir(model_dir):
      os.rmdir(model_dir)


def watch_parent(parent_pid: int, period_s: float = 1.0) -> threading.Thread:
  """Sends this process SIGTERM once `parent_pid` is no longer its parent: a pipeline stage whose runner was
  killed (kill -9, a lost session) saves a checkpoint and exits as if preempted, instead of training on as an
  orphan that a rerun would duplicate."""
  def watch():
    while os.getppid() == parent_pid:
      time.sleep(period_s)
    logging.getLogger(__name__).warning("the pipeline (pid %d) is gone: stopping this stage", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)
  thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
  thread.start()
  return thread
