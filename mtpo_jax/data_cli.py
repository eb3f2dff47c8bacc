"""`mtpo-data`: Education Dialogue data tools (docs/education_dialogue.md).

    python -m mtpo_jax.data_cli validate FILE...     # one line per problem: FILE:INDEX: FIELD: what is wrong
    python -m mtpo_jax.data_cli generate --out DIR   # synthetic data in the released format and split sizes
    python -m mtpo_jax.data_cli contexts TASK --out FILE   # an *_rl_contexts task's contexts, for RL runs

`validate` writes nothing; it exits 1 if any file has a problem (a summary goes to stderr) and 0 with a
one-line summary on stdout when every file is clean. Usage errors exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from mtpo_jax import cli_errors
from mtpo_jax.envs.education import generator, schema


def _validate(args: argparse.Namespace) -> int:
  problems, records = [], 0
  for path in args.files:
    data, found = schema.validate_file(path)
    records += len(data)
    problems += found
  for p in problems[:args.max_problems] if args.max_problems else problems:
    print(p)
  if problems:
    bad = len({(p.file, p.index) for p in problems})
    print(f"FAILED: {len(problems)} problem(s) in {bad} record(s)/file(s) of {len(args.files)} file(s)",
          file=sys.stderr)
    return 1
  print(f"OK: {len(args.files)} file(s), {records} record(s), no problems")
  return 0


def _generate(args: argparse.Namespace) -> int:
  for name in ("num_train", "num_train_files", "num_eval"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
  if args.num_train_files > args.num_train:
    raise ValueError(f"--num_train_files ({args.num_train_files}) must not exceed --num_train ({args.num_train})")
  start = time.perf_counter()
  paths = generator.write_dataset(args.out, seed=args.seed, num_train=args.num_train,
                                  num_train_files=args.num_train_files, num_eval=args.num_eval)
  total, seconds = args.num_train + args.num_eval, time.perf_counter() - start
  print(f"wrote {total} conversations to {len(paths)} files in {args.out} ({total / seconds:.0f}/s)")
  return 0


def _contexts(args: argparse.Namespace) -> int:
  """The offline cache step of the RL contexts (data/task_contexts.py): SeqIO reads the task here, once, and
  the RL runs read the file (`ContextSource.file`) without importing TensorFlow."""
  from mtpo_jax.data import task_contexts
  contexts = task_contexts.read_task_contexts(args.task, args.split, args.task_module)
  task_contexts.write_contexts_file(args.out, contexts)
  print(f"wrote {len(contexts)} contexts of {args.task} [{args.split}] to {args.out}")
  return 0


VERBOSE_HELP = f"print the traceback behind an error (or set {cli_errors.VERBOSE_ENV}=1)"


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="mtpo-data", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  v = sub.add_parser("validate", help="check files in the released Education Dialogue format")
  v.add_argument("files", nargs="+", metavar="FILE")
  v.add_argument("--max_problems", type=int, default=0, help="print at most this many problems (0: all)")
  v.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
  v.set_defaults(run=_validate)
  g = sub.add_parser("generate", help="write synthetic Education Dialogue data in the released format")
  g.add_argument("--out", required=True, help="output directory")
  g.add_argument("--seed", type=int, default=0)
  g.add_argument("--num_train", type=int, default=generator.NUM_TRAIN)
  g.add_argument("--num_train_files", type=int, default=generator.NUM_TRAIN_FILES)
  g.add_argument("--num_eval", type=int, default=generator.NUM_EVAL)
  g.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
  g.set_defaults(run=_generate)
  c = sub.add_parser("contexts", help="write the contexts of an *_rl_contexts SeqIO task to a file RL runs read")
  c.add_argument("task", help="e.g. education_dialogue_synthetic_small_rl_contexts")
  c.add_argument("--out", required=True, help="the contexts file (JSON lines; ContextSource.file)")
  c.add_argument("--split", default="train")
  c.add_argument("--task_module", action="append", default=[], help="a module that registers tasks (repeatable)")
  c.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
  c.set_defaults(run=_contexts)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point; returns the exit status (one error line on stderr and 1 on failure; --verbose: traceback)."""
  args = _parser().parse_args(argv)
  return cli_errors.run_command("mtpo-data", lambda: args.run(args), verbose=args.verbose)


def run() -> None:
  """Console-script entry (`mtpo-data`)."""
  sys.exit(main())


if __name__ == "__main__":
  run()
