"""`mtpo-inspect TASK [--split S] [-n N] [--stats] [--json]`: look at what a SeqIO task feeds the models.

Shows decoded inputs and targets (speaker roles stay visible, one turn per line); `--stats` prints counts,
token-length percentiles and truncation rates (turns dropped from long histories, tokens cut at the feature
length). `--list` names the registered tasks. Imports TensorFlow/SeqIO, so it lives at the edge.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import numpy as np

from mtpo_jax import cli_errors


def _registered_tasks() -> list[str]:
  import seqio
  import mtpo_tasks.registry  # noqa: F401  (registers every task)
  return sorted(seqio.TaskRegistry.names())


def _examples(task: str, split: str):
  from mtpo_tasks import registry
  return registry.python_examples(task, split)


def _stats(task: str, split: str, input_length: int, target_length: int) -> dict:
  import seqio
  from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, Vocabulary
  vocab = Vocabulary(DEFAULT_SPM_PATH)
  examples = list(_examples(task, split))
  if not examples:
    return {"task": task, "split": split, "examples": 0}
  ins = np.array([len(vocab.encode(e["inputs"])) + 1 for e in examples])
  tgs = np.array([len(vocab.encode(e["targets"])) + 1 for e in examples])
  pct = lambda a: {f"p{q}": int(np.percentile(a, q)) for q in (50, 90, 99)} | {"max": int(a.max())}
  del seqio
  return {"task": task, "split": split, "examples": len(examples),
          "input_tokens": pct(ins), "target_tokens": pct(tgs),
          "history_truncated_rate": round(float(np.mean([e["truncated"] for e in examples])), 4),
          f"inputs_over_{input_length}_rate": round(float(np.mean(ins > input_length)), 4),
          f"targets_over_{target_length}_rate": round(float(np.mean(tgs > target_length)), 4)}


def main(argv: Sequence[str] | None = None) -> int:
  ap = argparse.ArgumentParser(prog="mtpo-inspect", description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("task", nargs="?", help="task name (see --list)")
  ap.add_argument("--split", default="validation", choices=["train", "validation"])
  ap.add_argument("-n", type=int, default=3, help="examples to show")
  ap.add_argument("--stats", action="store_true", help="counts, token-length percentiles, truncation rates")
  ap.add_argument("--json", action="store_true", help="machine-readable output")
  ap.add_argument("--list", action="store_true", help="list the registered tasks")
  ap.add_argument("--input_length", type=int, default=None, help="default: the task's own feature length")
  ap.add_argument("--target_length", type=int, default=128)
  ap.add_argument("--verbose", action="store_true",
                  help=f"print the traceback behind an error (or set {cli_errors.VERBOSE_ENV}=1)")
  args = ap.parse_args(argv)
  return cli_errors.run_command("mtpo-inspect", lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
  tasks = _registered_tasks()
  if args.list or not args.task:
    print("\n".join(tasks))
    return 0
  if args.task not in tasks:
    close = [t for t in tasks if args.task in t or t in args.task][:5]
    print(f"mtpo-inspect: unknown task {args.task!r}" + (f"; did you mean {close}?" if close else
                                                          "; see --list"), file=sys.stderr)
    return 2
  if args.stats:
    if args.input_length is None:
      from mtpo_tasks import registry
      args.input_length = registry.input_length(args.task)
    stats = _stats(args.task, args.split, args.input_length, args.target_length)
    print(json.dumps(stats, indent=None if args.json else 2))
    return 0
  for i, e in zip(range(args.n), _examples(args.task, args.split)):
    if args.json:
      print(json.dumps({k: e[k] for k in ("id", "inputs", "targets", "truncated")}))
    else:
      print(f"=== {args.task} [{args.split}] #{i}  id={e['id']}{'  (history truncated)' if e['truncated'] else ''}")
      print("--- inputs ---\n" + e["inputs"])
      print("--- targets ---\n" + e["targets"] + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
