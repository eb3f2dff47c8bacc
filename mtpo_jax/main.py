"""Entrypoint: `python -m mtpo_jax.main --gin_file=A.gin --gin_file=B.gin --gin.MODEL_DIR="'/tmp/run'"`.

Gin files are looked up as given, then under the repository's `gin/` directory. Unknown or misspelt
configurable names fail in gin's parser before any work starts. `--gin.NAME=VALUE` is shorthand for
`--gin_bindings=NAME=VALUE`. The full and the operative configs are written into MODEL_DIR.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import gin

from mtpo_jax import gin_registry


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


def run(argv: Sequence[str] | None = None) -> object:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU backend" on every CPU run
  files, bindings = parse_args(sys.argv[1:] if argv is None else argv)
  gin_registry.parse_config(files, bindings)
  return gin.get_configurable("run")()  # launch.run_job with the parsed bindings


def main() -> None:
  """The command line: exit status 0 when the job finished, PREEMPTED_EXIT_STATUS when SIGTERM/SIGINT stopped it
  after a checkpoint (rerun to resume)."""
  from mtpo_jax.training.loop import PREEMPTED_EXIT_STATUS, Preempted
  try:
    run()
  except Preempted:  # the checkpoint is written and the one line logged
    sys.exit(PREEMPTED_EXIT_STATUS)


if __name__ == "__main__":
  main()
