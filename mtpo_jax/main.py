"""Entrypoint: `python -m mtpo_jax.main --gin_file=A.gin --gin_file=B.gin --gin.MODEL_DIR="'/tmp/run'"`.

Gin files are looked up as given, then under the repository's `gin/` directory. Unknown or misspelt
configurable names fail in gin's parser before any work starts. `--gin.NAME=VALUE` is shorthand for
`--gin_bindings=NAME=VALUE`. The full and the operative configs are written into MODEL_DIR.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, Sequence

import gin

from mtpo_jax import gin_registry

GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


@gin.configurable("run")
def run_job(job: Callable[[], object] = gin.REQUIRED, model_dir: str = gin.REQUIRED,
            distributed: bool = False, coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, num_cpu_devices: int | None = None) -> object:
  """Initialises jax.distributed when asked (TPU pods and GPU hosts), then runs the configured job.

  `num_cpu_devices` splits the host CPU into that many XLA devices (the fake meshes used in tests).
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
  os.makedirs(model_dir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(model_dir, "config.gin"), "w") as f:
      f.write(gin.config_str())
  result = job()
  if jax.process_index() == 0:
    with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
      f.write(gin.operative_config_str())
  return result


def parse_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  parser = argparse.ArgumentParser(prog="mtpo-train", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  parser.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
  args, rest = parser.parse_known_args(argv)
  bindings = list(args.gin_bindings)
  for arg in rest:
    if arg.startswith("--gin.") and "=" in arg:
      bindings.append(arg[len("--gin."):])
    else:
      parser.error(f"unrecognized argument {arg!r}")
  if not args.gin_file:
    parser.error("at least one --gin_file is required (e.g. --gin_file=gin/experiments/sft_tiny.gin)")
  return args.gin_file, bindings


def parse_config(gin_files: Sequence[str], bindings: Sequence[str]) -> None:
  """Parses files and bindings; raises on unknown names, missing files or syntax errors."""
  gin_registry.register()
  gin.clear_config()  # unlocks too: a second run in one process (tests, notebooks) starts clean
  # Includes such as 'runs/sft.gin' must resolve under GIN_DIR before gin tries its package-resource reader,
  # which crashes (TypeError) when the working directory holds a same-named folder (e.g. a `runs/` output
  # directory is a namespace package to importlib). gin has no public API to order search paths.
  from gin import config as gin_config
  if GIN_DIR not in gin_config._LOCATION_PREFIXES:
    gin_config._LOCATION_PREFIXES.insert(0, GIN_DIR)
  resolved = []
  for f in gin_files:
    if os.path.exists(f):
      resolved.append(os.path.abspath(f))
    elif os.path.exists(os.path.join(GIN_DIR, f)):
      resolved.append(os.path.join(GIN_DIR, f))
    else:
      raise FileNotFoundError(f"gin file {f!r} not found (looked in the working directory and {GIN_DIR})")
  gin.parse_config_files_and_bindings(resolved, bindings, finalize_config=True)


def run(argv: Sequence[str] | None = None) -> object:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU backend" on every CPU run
  files, bindings = parse_args(sys.argv[1:] if argv is None else argv)
  parse_config(files, bindings)
  return run_job()


if __name__ == "__main__":
  run()
