"""Entrypoint: `python -m mtpo_jax.main --gin_file=A.gin --gin_file=B.gin --gin.MODEL_DIR="'/tmp/run'"`.

Gin files are looked up as given, then under the repository's `gin/` directory. Unknown or misspelt
configurable names fail in gin's parser before any work starts. `--gin.NAME=VALUE` is shorthand for
`--gin_bindings=NAME=VALUE`. The full and the operative configs are written into MODEL_DIR, once the job has
accepted its configuration; an existing MODEL_DIR with other bindings is refused unless --allow_config_change.
Errors are one line on stderr (exit status 1); --verbose (or MTPO_VERBOSE=1) prints the traceback too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import gin

from mtpo_jax import cli_errors, gin_registry


def parse_command(argv: Sequence[str]) -> argparse.Namespace:
  """The command line: gin_files, bindings (with every --gin.NAME=VALUE), verbose, allow_config_change."""
  parser = argparse.ArgumentParser(prog="mtpo-train", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  parser.add_argument("--gin_bindings", action="append", default=[], help="gin binding (repeatable)")
  parser.add_argument("--verbose", action="store_true",
                      help=f"print the traceback behind an error (or set {cli_errors.VERBOSE_ENV}=1)")
  parser.add_argument("--allow_config_change", action="store_true",
                      help="continue an existing MODEL_DIR under changed bindings (its config.gin is kept as "
                      "config.previous-N.gin); without it such a rerun is refused with the diff")
  args, rest = parser.parse_known_args(argv)
  args.bindings = list(args.gin_bindings)
  for arg in rest:
    if arg.startswith("--gin.") and "=" in arg:
      args.bindings.append(arg[len("--gin."):])
    else:
      parser.error(f"unrecognized argument {arg!r}")
  if not args.gin_file:
    parser.error("at least one --gin_file is required (e.g. --gin_file=gin/experiments/sft_tiny.gin)")
  return args


def parse_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(gin files, bindings) of a command line."""
  args = parse_command(argv)
  return args.gin_file, args.bindings


def run(argv: Sequence[str] | None = None) -> object:
  """Parses the command line and runs the job; raises on any error (`main` turns errors into one line)."""
  cli_errors.setup_logging()
  args = parse_command(sys.argv[1:] if argv is None else argv)
  gin_registry.parse_config(args.gin_file, args.bindings)
  # launch.run_job with the parsed bindings
  return gin.get_configurable("run")(allow_config_change=args.allow_config_change)


def cli(argv: Sequence[str] | None = None) -> int:
  """The command line's exit status: 0 when the job finished; PREEMPTED_EXIT_STATUS when SIGTERM/SIGINT stopped
  it after a checkpoint (rerun to resume); 1 with one error line on stderr (the traceback with --verbose);
  2 for a malformed command line."""
  from mtpo_jax.training.loop import PREEMPTED_EXIT_STATUS, Preempted
  argv = list(sys.argv[1:] if argv is None else argv)

  def body() -> int:
    try:
      run(argv)
    except Preempted:  # the checkpoint is written and the one line logged
      return PREEMPTED_EXIT_STATUS
    return 0
  return cli_errors.run_command("mtpo-train", body, verbose="--verbose" in argv)


def main() -> None:
  sys.exit(cli())


if __name__ == "__main__":
  main()
