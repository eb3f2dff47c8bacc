"""Evaluate trained policies against each other: the pairwise win-rate matrix of papers/digest.md A13.

    python -m mtpo_jax.evaluation.evaluate --run sft=runs/sft_edu --run mtpo=runs/mtpo_oracle \\
        --out runs/eval_edu --num_contexts 256 --env education --seed 0

Each --run NAME=DIR[,DIR...] is an SFT, RL or Iterative PPO run directory (several: the seeds of one method,
averaged over every seed pair as in the paper's 3 x 3 seed matrices) (its newest checkpoint; its config.gin gives the
T5Config, or pass --gin_file/--gin for every run). For education, DIR may instead name a scripted teacher of the
data generator, `scripted:<preference>:<reaction>` (envs/education/scripted_teacher.py, e.g.
`--run ceiling=scripted:hands_on:might_adapt`) or a canonical strategy `canonical:<strategy>` (e.g.
`--run discover=canonical:discover`). Every method plays the same held-out contexts with the same
sampling keys; the ground-truth judge (--judge: the rubric, or the rater panel of oracles/population.py, for
education; the sale price for negotiation) compares every pair in both orders. Conversation settings (max_agent_turns, input_length, max_turn_tokens, temperature) default
to the first RL run's config.gin that binds them, then to train_rl's defaults; they are the same for every method.

Writes OUT/win_matrix.md, win_matrix.json, win_matrix.png, curves.png (win rate, KL, value loss from the runs'
metrics.jsonl), samples.md, and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

from mtpo_jax import atomic_files, cli_errors
from mtpo_jax.envs.education import scripted_teacher, strategy_game
from mtpo_jax.evaluation import policies as pol
from mtpo_jax.evaluation import report
from mtpo_jax.evaluation.win_matrix import WinMatrix, grouped_win_matrix
from mtpo_jax.checkpoints import load_policy
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.oracles.bradley_terry import sale_reward_judge

GROUND_TRUTH_JUDGES = ("rubric", "population")  # --judge for education
# train_rl's defaults, used when neither the command line nor any run's config.gin sets them.
DEFAULT_SETTINGS = {"max_agent_turns": 10, "input_length": 512, "max_turn_tokens": 64, "temperature": 1.0}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m mtpo_jax.evaluation.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--run", action="append", default=[], metavar="NAME=DIR[,DIR...]",
                      help="a method and its seeds' run directories (repeat, >= 2 methods)")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--num_contexts", type=int, default=256)
  parser.add_argument("--env", default="education", choices=registry.ENVIRONMENTS)
  parser.add_argument("--split", default="eval", choices=("eval", "test"), help="held-out context stream")
  parser.add_argument("--seed", type=int, default=0, help="contexts, sampling keys, students and the bootstrap")
  parser.add_argument("--judge", default="rubric", choices=GROUND_TRUTH_JUDGES,
                      help="education's ground truth: the rubric or the intransitive rater panel (population)")
  for name, kind in (("max_agent_turns", int), ("input_length", int), ("max_turn_tokens", int),
                     ("temperature", float)):
    parser.add_argument(f"--{name}", type=kind, default=None, help="default: from the runs' config.gin")
  parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
  parser.add_argument("--num_samples", type=int, default=3, help="contexts shown in samples.md")
  parser.add_argument("--chunk", type=int, default=64, help="contexts per sampler batch")
  parser.add_argument("--vocab", default=None, help="SentencePiece model (default: the committed vocabulary)")
  parser.add_argument("--student", default=None, help="a learned student's checkpoints directory (education; "
                      "default: the scripted student)")
  parser.add_argument("--gin_file", action="append", default=[], help="model Gin file for every run (repeatable)")
  parser.add_argument("--gin", action="append", default=[], help="Gin binding for every run, e.g. "
                      "T5Config.vocab_size=3072 (repeatable)")
  parser.add_argument("--verbose", action="store_true",
                      help=f"print the traceback behind an error (or set {cli_errors.VERBOSE_ENV}=1)")
  args = parser.parse_args(argv)
  runs: dict[str, list[str]] = {}
  for spec in args.run:
    name, sep, directories = spec.partition("=")
    dirs = [d for d in directories.split(",") if d]
    if not sep or not name or not dirs:
      parser.error(f"--run takes NAME=DIR[,DIR...], got {spec!r}")
    if name in runs:
      parser.error(f"method name {name!r} given twice")
    runs[name] = dirs
  if len(runs) < 2:
    parser.error("need at least two --run NAME=DIR to compare")
  if args.num_contexts < 1 or args.resamples < 1 or args.chunk < 1:
    parser.error("--num_contexts, --resamples and --chunk must be >= 1")
  args.runs = runs
  return args


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
  """Conversation settings: the command line, else the first run's config.gin that binds them, else defaults."""
  from_runs: dict[str, Any] = {}
  for directory in [d for dirs in args.runs.values() for d in dirs]:
    for k, v in pol.run_settings(directory, list(DEFAULT_SETTINGS)).items():
      from_runs.setdefault(k, v)
  return {k: getattr(args, k) if getattr(args, k) is not None else from_runs.get(k, d)
          for k, d in DEFAULT_SETTINGS.items()}


def ground_truth_judge(env_name: str, judge: str = "rubric") -> Any:
  """The evaluation judge: for Education Dialogue the rubric or the rater panel (`judge`, GROUND_TRUTH_JUDGES),
  for negotiation Bradley-Terry over the sale price."""
  if judge not in GROUND_TRUTH_JUDGES:
    raise ValueError(f"unknown judge {judge!r}; expected one of {GROUND_TRUTH_JUDGES}")
  if env_name == "education":
    from mtpo_jax.oracles.population import PopulationJudge
    from mtpo_jax.oracles.rubric import RubricJudge
    return RubricJudge() if judge == "rubric" else PopulationJudge()
  if judge != "rubric":
    raise ValueError(f"--judge {judge} exists for education only; negotiation is judged by the sale price")
  return sale_reward_judge()


def write_outputs(out: str, result: WinMatrix, conversations, judge, runs: dict[str, list[str]],
                  info: dict[str, Any], num_samples: int) -> str:
  """Writes every output file under `out`; returns the Markdown report."""
  os.makedirs(out, exist_ok=True)
  table = report.markdown_table(result)
  settings = ", ".join(f"{k}={v}" for k, v in info["settings"].items())
  source = lambda s: (f"scripted teacher `{s['scripted_teacher']}`" if "scripted_teacher" in s
                      else f"`{s['checkpoint_dir']}` step {s['step']} ({s['layout']})")
  sources = [f"- {n}: " + "; ".join(source(s) for s in runs_) for n, runs_ in info["runs"].items()]
  text = (f"# Win-rate matrix ({info['env']}, {info['split']} contexts, seed {info['seed']})\n\n{table}\n"
          f"Settings: {settings}.\n\nPolicies:\n" + "\n".join(sources) + "\n")
  atomic_files.write_text(os.path.join(out, "win_matrix.md"), text)
  atomic_files.write_json(os.path.join(out, "win_matrix.json"), {**result.to_json(), **info})
  report.plot_heatmap(result, os.path.join(out, "win_matrix.png"))
  report.plot_learning_curves(seed_runs(runs), os.path.join(out, "curves.png"))
  atomic_files.write_text(os.path.join(out, "samples.md"),  # each method's first seed
                          report.samples_markdown({n: c[0] for n, c in conversations.items()}, judge, num_samples))
  return text


def seed_runs(runs: dict[str, list[str]]) -> dict[str, str]:
  """One entry per run directory: "NAME" for a single seed, "NAME/k" for the k-th of several."""
  return {(n if len(dirs) == 1 else f"{n}/{k}"): d for n, dirs in runs.items() for k, d in enumerate(dirs)}


def evaluate(argv: Sequence[str] | None = None) -> WinMatrix:
  """Runs the CLI (see the module docstring) and returns the matrix."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  settings = resolve_settings(args)
  judge = ground_truth_judge(args.env, args.judge)  # a bad --judge fails before any work
  loaded, scripted = {}, {}
  for key, directory in seed_runs(args.runs).items():
    if scripted_teacher.is_scripted(directory):
      if args.env != "education" or args.student:
        raise ValueError(f"--run {directory}: scripted teachers play Education Dialogue with the scripted student "
                         "only (no --student, --env education)")
      scripted_teacher.check_name(directory)  # fail on a bad name before any work
      scripted[key] = directory
      continue
    config = pol.model_config(directory, args.gin_file, args.gin)
    loaded[key] = load_policy(directory, config)
  if not loaded:
    raise ValueError("evaluate needs at least one trained policy (--run NAME=DIR) for the model settings")
  contexts = registry.contexts(args.env, args.num_contexts, args.seed, args.split)
  # PLAY: same contexts, same sampling keys, for every method and seed
  t0 = time.time()
  conversation = ConversationSettings(env_name=args.env, student_checkpoint=args.student, vocab_path=args.vocab,
                                      **settings)
  played = pol.play(loaded, conversation, contexts, seed=args.seed, chunk=args.chunk)
  for key, name in scripted.items():
    played[key] = scripted_teacher.play(name, contexts, max_agent_turns=settings["max_agent_turns"], seed=args.seed)
  keys = list(seed_runs(args.runs))
  conversations, start = {}, 0
  for name, dirs in args.runs.items():
    conversations[name] = [played[k] for k in keys[start:start + len(dirs)]]
    start += len(dirs)
  t1 = time.time()
  # JUDGE: both orders of every pair of runs, bootstrap over contexts
  result = grouped_win_matrix(conversations, judge, resamples=args.resamples, seed=args.seed)
  info = {"env": args.env, "judge": args.judge, "split": args.split, "seed": args.seed, "settings": settings,
          "play_s": t1 - t0, "judge_s": time.time() - t1,
          "vocab": args.vocab, "student": args.student, "runs": {}}
  for name, dirs in args.runs.items():
    info["runs"][name] = [{"run_dir": d, "checkpoint_dir": loaded[k].checkpoint_dir, "step": loaded[k].step,
                           "layout": loaded[k].layout, "meta": loaded[k].meta} if k in loaded
                          else {"scripted_teacher": d} for k, d in seed_runs({name: dirs}).items()]
  if args.env == "education":  # where each method's conversations sit among the teaching strategies
    info["strategy_profiles"] = {name: strategy_game.strategy_profile([c for run in runs_ for c in run])
                                 for name, runs_ in conversations.items()}
  text = write_outputs(args.out, result, conversations, judge, args.runs, info, args.num_samples)
  print(text)
  return result


def main(argv: Sequence[str] | None = None) -> int:
  """The command line's exit status: 0, or 1 with one error line on stderr (the traceback with --verbose)."""
  cli_errors.setup_logging()
  argv = list(sys.argv[1:] if argv is None else argv)
  def body() -> int:
    evaluate(argv)
    return 0
  return cli_errors.run_command("mtpo-evaluate", body, verbose="--verbose" in argv)


if __name__ == "__main__":
  sys.exit(main())
