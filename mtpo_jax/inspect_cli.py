"""`mtpo-inspect TASK_OR_MIXTURE [--split S] [-n N] [--stats] [--json]`: what a SeqIO task feeds the trainers.

Rows are read exactly as the trainers read them (data/task_data.py: SeqIO, left-trimmed inputs, EOS, the
EncDecFeatureConverter at --inputs_length/--targets_length) and decoded, with each row's token count and how
many tokens the feature length cut; with --batch I (and --batch_size, --seed, --data_shards) the rows of the
trainer's batch I in its order. `--stats` prints counts, token-length percentiles before the cut and cut rates.
`--list` names the registered tasks and mixtures; `--task_module M` imports a module that registers more.
Imports TensorFlow/SeqIO, so it lives at the edge.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import numpy as np

from mtpo_jax import cli_errors


def _registered(modules: Sequence[str]) -> list[str]:
  import seqio
  from mtpo_jax.data import task_data
  task_data.import_task_modules(modules)
  return sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))


def _raw_lengths(task: str, split: str, limit: int | None) -> dict[str, np.ndarray]:
  """Token counts of "inputs" and "targets" (EOS included) before any feature length cuts them."""
  import seqio
  ds = seqio.get_mixture_or_task(task).get_dataset(None, split=split, shuffle=False, num_epochs=1, use_cached=False)
  if limit is not None:
    ds = ds.take(limit)
  counts = {"inputs": [], "targets": []}
  for ex in ds.as_numpy_iterator():
    for key in counts:
      counts[key].append(len(ex[key]))
  return {k: np.array(v, np.int64) for k, v in counts.items()}


def _tokens(row: np.ndarray) -> int:
  return int((row != 0).sum())


def _stats(args: argparse.Namespace, lengths: dict[str, int]) -> dict:
  from mtpo_jax.data import task_data
  out = {"mixture_or_task": args.task, "split": args.split, "task_feature_lengths": lengths, "tasks": {}}
  for name, rate in task_data.leaf_tasks(args.task, args.task_module):
    raw = _raw_lengths(name, args.split, None)
    n = len(raw["inputs"])
    if not n:
      out["tasks"][name] = {"examples": 0}
      continue
    pct = lambda a: {f"p{q}": int(np.percentile(a, q)) for q in (50, 90, 99)} | {"max": int(a.max())}
    out["tasks"][name] = {
        "rate": rate, "examples": n, "input_tokens": pct(raw["inputs"]), "target_tokens": pct(raw["targets"]),
        "inputs_cut_rate": round(float(np.mean(raw["inputs"] > lengths["inputs"])), 4),
        "targets_cut_rate": round(float(np.mean(raw["targets"] > lengths["targets"])), 4)}
  if len(out["tasks"]) == 1:  # a task: its figures at the top level
    out.update(next(iter(out["tasks"].values())))
    del out["tasks"]
  return out


def _rows(args: argparse.Namespace, lengths: dict[str, int]) -> list[dict]:
  """The rows a trainer reads: the first -n of each task, or the first -n rows of batch --batch."""
  from mtpo_jax.data import task_data
  from mtpo_jax.text.vocabulary import Vocabulary
  vocab = Vocabulary(task_data.sentencepiece_path(args.task, args.task_module))
  rows = []
  if args.batch is not None:
    feed = task_data.TaskFeed(args.task, lengths, args.split, data_shards=args.data_shards,
                              task_modules=tuple(args.task_module))
    batch = task_data.TaskBatches(feed, args.batch_size, args.seed).batch(args.batch)
    for r in range(min(args.n, args.batch_size)):
      rows.append({"row": f"batch {args.batch} row {r}", "inputs_ids": batch["encoder_input_tokens"][r],
                   "targets_ids": batch["decoder_target_tokens"][r]})
  else:
    for name, _ in task_data.leaf_tasks(args.task, args.task_module):
      arrays = task_data.read_converted(name, args.split, lengths)
      raw = _raw_lengths(name, args.split, args.n)
      for k in range(min(args.n, len(raw["inputs"]))):
        rows.append({"row": f"{name} #{k}", "inputs_ids": arrays["encoder_input_tokens"][k],
                     "targets_ids": arrays["decoder_target_tokens"][k],
                     "inputs_cut": max(0, int(raw["inputs"][k]) - lengths["inputs"]),
                     "targets_cut": max(0, int(raw["targets"][k]) - lengths["targets"])})
  for row in rows:
    for key in ("inputs", "targets"):
      ids = row.pop(f"{key}_ids")
      row[key], row[f"{key}_tokens"] = vocab.decode(list(ids)), _tokens(ids)
      if args.ids:
        row[f"{key}_ids"] = [int(i) for i in ids[:_tokens(ids)]]
  return rows


def main(argv: Sequence[str] | None = None) -> int:
  ap = argparse.ArgumentParser(prog="mtpo-inspect", description=__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("task", nargs="?", help="task or mixture name (see --list)")
  ap.add_argument("--split", default="validation")
  ap.add_argument("-n", type=int, default=3, help="rows to show (per task without --batch)")
  ap.add_argument("--stats", action="store_true", help="counts, token-length percentiles, cut rates")
  ap.add_argument("--json", action="store_true", help="machine-readable output")
  ap.add_argument("--list", action="store_true", help="list the registered tasks and mixtures")
  ap.add_argument("--task_module", action="append", default=[], help="a module that registers tasks (repeatable)")
  ap.add_argument("--inputs_length", type=int, default=None,
                  help="task_feature_lengths['inputs'] (default: the project task's own budget, else 512)")
  ap.add_argument("--targets_length", type=int, default=128, help="task_feature_lengths['targets']")
  ap.add_argument("--ids", action="store_true", help="also print the token ids")
  ap.add_argument("--batch", type=int, default=None, help="show rows of the trainer's batch I")
  ap.add_argument("--batch_size", type=int, default=8, help="with --batch: LoopSettings.batch_size")
  ap.add_argument("--seed", type=int, default=0, help="with --batch: LoopSettings.seed (eval splits: seed + 1)")
  ap.add_argument("--data_shards", type=int, default=1, help="with --batch: train_sft.data_shards")
  ap.add_argument("--verbose", action="store_true",
                  help=f"print the traceback behind an error (or set {cli_errors.VERBOSE_ENV}=1)")
  args = ap.parse_args(argv)
  return cli_errors.run_command("mtpo-inspect", lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
  names = _registered(args.task_module)
  if args.list or not args.task:
    print("\n".join(names))
    return 0
  if args.task not in names:
    close = [t for t in names if args.task in t or t in args.task][:5]
    print(f"mtpo-inspect: unknown task {args.task!r}" + (f"; did you mean {close}?" if close else
                                                          "; see --list"), file=sys.stderr)
    return 2
  if args.inputs_length is None:
    from mtpo_tasks import registry
    args.inputs_length = registry.input_length(args.task)
  lengths = {"inputs": args.inputs_length, "targets": args.targets_length}
  if args.stats:
    print(json.dumps(_stats(args, lengths), indent=None if args.json else 2))
    return 0
  for row in _rows(args, lengths):
    if args.json:
      print(json.dumps(row))
      continue
    cut = lambda key: f", {row[key + '_cut']} cut" if row.get(key + "_cut") else ""
    print(f"=== {row['row']} [{args.split}]")
    print(f"--- inputs ({row['inputs_tokens']} tokens{cut('inputs')}) ---\n{row['inputs']}")
    if args.ids:
      print(row["inputs_ids"])
    print(f"--- targets ({row['targets_tokens']} tokens{cut('targets')}) ---\n{row['targets']}\n")
    if args.ids:
      print(row["targets_ids"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
