"""Learning-efficacy benchmark: does RL from the SFT policy improve it under the ground-truth judge?

Trains each method (default MTPO and multi-turn RLHF) from a tiny SFT teacher with the *online* ground-truth
judge (the rubric: MTPO gets p and 1 - p of each judged pair, RLHF-m the rubric score as its reward), saving
every K iterations. Then, on held-out test contexts, every saved policy plays against SFT with common random
numbers and the ground truth judges both orders:

  iteration | minutes | win rate vs SFT [95% bootstrap] | mean rubric score | KL to mu (training batch)

plus the ceiling: the best scripted teacher of the data generator against the same SFT conversations. Writes
OUT/learning.md (the table), OUT/learning.json and OUT/learning.png (the curves). Needs an SFT teacher and its
vocabulary, e.g. from the main job's first stages:

  python -m mtpo_jax.main --gin_file=experiments/pipeline_tiny.gin --gin.MODEL_DIR="'runs/pipeline'" \\
      --gin.run_pipeline.only="['education/sft']"
  python benchmarks/bench_learning.py --pipeline_dir=runs/pipeline --out=runs/bench_learning

The RL settings default to the main job's (gin/experiments/pipeline_tiny.gin, "rl" overrides): --gin adds or
replaces bindings for every method, e.g. --gin="ActorCriticHParams.alpha = 0.05".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


SETTINGS = ("max_agent_turns", "input_length", "max_turn_tokens", "temperature")


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--pipeline_dir", required=True, help="a main-job run directory with education/sft and vocabulary")
  p.add_argument("--out", required=True)
  p.add_argument("--methods", default="mtpo,rlhf_multi", help="comma-separated train_rl algorithms")
  p.add_argument("--iterations", type=int, default=None, help="default: the main job's LoopSettings.num_steps")
  p.add_argument("--eval_every", type=int, default=10)
  p.add_argument("--test_contexts", type=int, default=128)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--resamples", type=int, default=1000)
  p.add_argument("--gin", action="append", default=[], help="extra Gin binding for every method's training")
  p.add_argument("--skip_training", action="store_true", help="evaluate the runs already in --out")
  return p.parse_args(argv)


def main_job_rl_bindings() -> list[str]:
  """The main job's RL overrides (experiments/pipeline_tiny.gin), so the benchmark measures what it runs."""
  import gin
  from mtpo_jax import gin_registry
  gin_registry.parse_config(["experiments/pipeline_tiny.gin"], ["MODEL_DIR = '/unused'"])
  overrides = gin.query_parameter("PipelinePlan.overrides")
  gin.clear_config()
  return list(overrides["rl"])


def train(method: str, run_dir: str, args: argparse.Namespace, base: list[str]) -> float:
  """Trains one method (a subprocess of the Gin entrypoint); returns wall seconds (0 when already done)."""
  sft = os.path.join(args.pipeline_dir, "education", "sft", "checkpoints")
  vocab = os.path.join(args.pipeline_dir, "vocabulary", "spm.model")
  bindings = [*base, "T5Config.vocab_size = 3072", f"MODEL_DIR = '{run_dir}'", f"SFT_CHECKPOINT = '{sft}'",
              f"ConversationSettings.vocab_path = '{vocab}'", f"LoopSettings.seed = {args.seed}",
              f"LoopSettings.save_every = {args.eval_every}", "LoopSettings.keep_checkpoints = 1000",
              # the trainer's own evaluation (eval split) is not needed: this benchmark evaluates on test contexts
              "LoopSettings.eval_every = 100000", "train_rl.eval_contexts = 8",
              *([f"LoopSettings.num_steps = {args.iterations}"] if args.iterations else []), *args.gin]
  cmd = [sys.executable, "-m", "mtpo_jax.main", "--gin_file=models/t5_tiny.gin", f"--gin_file=runs/{method}.gin",
         "--gin_file=meshes/cpu.gin", *[f"--gin_bindings={b}" for b in bindings]]
  t0 = time.time()
  with open(os.path.join(run_dir + ".log"), "w") as log:
    code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
  if code:
    raise SystemExit(f"[bench_learning] training {method} failed (exit {code}); see {run_dir}.log")
  return time.time() - t0


def kl_by_step(run_dir: str) -> dict[int, float]:
  out = {}
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      rec = json.loads(line)
      if "train/kl_to_reference" in rec:
        out[int(rec["step"])] = float(rec["train/kl_to_reference"])
  return out


def elapsed_by_step(run_dir: str) -> dict[int, float]:
  """Seconds of training (collect + judge + update) up to each iteration, from the run's metrics."""
  out, total = {}, 0.0
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      rec = json.loads(line)
      if "train/update_s" in rec:
        total += sum(float(rec.get(f"train/{k}", 0.0)) for k in ("collect_s", "judge_s", "update_s"))
        out[int(rec["step"])] = total
  return out


def evaluate(args: argparse.Namespace, runs: dict[str, str], settings: dict) -> dict:
  from mtpo_jax.checkpoints import checkpoint_steps, load_policy
  from mtpo_jax.envs.education import scripted_teacher
  from mtpo_jax.envs.registry import ConversationSettings
  from mtpo_jax.evaluation import policies
  from mtpo_jax.evaluation.win_matrix import bootstrap_indices, bootstrap_interval, symmetric_preferences
  from mtpo_jax.oracles.rubric import RubricJudge
  from mtpo_jax.envs import registry

  vocab = os.path.join(args.pipeline_dir, "vocabulary", "spm.model")
  config = policies.model_config(None, ["models/t5_tiny.gin"], ["T5Config.vocab_size = 3072"])
  contexts = registry.contexts("education", args.test_contexts, args.seed, "test")
  judge = RubricJudge()
  idx = bootstrap_indices(len(contexts), args.resamples, args.seed)
  conversation = ConversationSettings(vocab_path=vocab, **settings)
  play = lambda loaded: policies.play(loaded, conversation, contexts, seed=args.seed)
  sft = load_policy(os.path.join(args.pipeline_dir, "education", "sft"), config)
  reference = play({"sft": sft})["sft"]

  def row(conversations) -> dict:
    p = symmetric_preferences(judge, conversations, reference)
    lo, hi = bootstrap_interval(p, idx)
    return {"win_rate": float(p.mean()), "low": lo, "high": hi, "score": float(judge.score(conversations).mean())}

  result = {"settings": settings, "test_contexts": len(contexts), "sft_score": float(judge.score(reference).mean()),
            "methods": {}}
  best = None
  for name in scripted_teacher.all_names():
    r = row(scripted_teacher.play(name, contexts, max_agent_turns=settings["max_agent_turns"], seed=args.seed))
    if best is None or r["win_rate"] > best[1]["win_rate"]:
      best = (name, r)
  result["ceiling"] = {"name": best[0], **best[1]}
  for method, run_dir in runs.items():
    steps = checkpoint_steps(run_dir)
    kls, elapsed = kl_by_step(run_dir), elapsed_by_step(run_dir)
    rows = [{"iteration": 0, "minutes": 0.0, "win_rate": 0.5, "low": 0.5, "high": 0.5,
             "score": result["sft_score"], "kl": 0.0}]
    for step in steps:
      loaded = load_policy(run_dir, config, step)
      rows.append({"iteration": int(step), "minutes": elapsed.get(step, float("nan")) / 60.0,
                   **row(play({method: loaded})[method]), "kl": kls.get(step, float("nan"))})
      print(f"[bench_learning] {method} iteration {step}: win rate {rows[-1]['win_rate']:.3f} "
            f"[{rows[-1]['low']:.3f}, {rows[-1]['high']:.3f}]", flush=True)
    result["methods"][method] = rows
  return result


def markdown(result: dict) -> str:
  lines = [f"Held-out test contexts: {result['test_contexts']}; conversation settings {result['settings']}; "
           f"SFT mean rubric score {result['sft_score']:.2f}.", "",
           "| method | iteration | training minutes | win rate vs SFT [95% CI] | mean rubric score | KL to mu |",
           "|---|---|---|---|---|---|"]
  for method, rows in result["methods"].items():
    for r in rows[1:]:
      lines.append(f"| {method} | {r['iteration']} | {r['minutes']:.1f} | {r['win_rate']:.3f} "
                   f"[{r['low']:.3f}, {r['high']:.3f}] | {r['score']:.2f} | {r['kl']:.3f} |")
  c = result["ceiling"]
  lines.append(f"| ceiling: {c['name']} | - | - | {c['win_rate']:.3f} [{c['low']:.3f}, {c['high']:.3f}] | "
               f"{c['score']:.2f} | - |")
  return "\n".join(lines) + "\n"


def plot(result: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  for method, rows in result["methods"].items():
    it = [r["iteration"] for r in rows]
    ax.plot(it, [r["win_rate"] for r in rows], marker="o", label=method)
    ax.fill_between(it, [r["low"] for r in rows], [r["high"] for r in rows], alpha=0.2)
  c = result["ceiling"]
  ax.axhline(c["win_rate"], color="k", ls="--", lw=1, label=f"ceiling ({c['name']})")
  ax.axhline(0.5, color="grey", lw=0.8)
  ax.set_xlabel("RL iteration")
  ax.set_ylabel("win rate vs SFT (ground truth, both orders)")
  ax.set_title(f"Learning from the online ground-truth judge ({result['test_contexts']} test contexts)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> None:
  args = parse_args(argv)
  os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # gin/ paths resolve from the repo
  args.pipeline_dir, args.out = os.path.abspath(args.pipeline_dir), os.path.abspath(args.out)
  for need in (os.path.join(args.pipeline_dir, "education", "sft", "checkpoints"),
               os.path.join(args.pipeline_dir, "vocabulary", "spm.model")):
    if not os.path.exists(need):
      raise SystemExit(f"[bench_learning] {need} is missing: run the main job's SFT stage first (module docstring)")
  os.makedirs(args.out, exist_ok=True)
  base = main_job_rl_bindings()
  settings = {"temperature": 1.0}
  for b in [*base, *args.gin]:
    key, _, value = b.partition("=")
    name = key.strip().removeprefix("ConversationSettings.")
    if name in SETTINGS:
      settings[name] = type(settings.get(name, 0))(float(value)) if name == "temperature" else int(value)
  runs, seconds = {}, {}
  for method in args.methods.split(","):
    runs[method] = os.path.join(args.out, method)
    if not args.skip_training:
      seconds[method] = train(method, runs[method], args, base)
      print(f"[bench_learning] trained {method} in {seconds[method] / 60:.1f} min", flush=True)
  result = evaluate(args, runs, settings)
  result["wall_seconds"] = seconds
  result["command"] = " ".join(["python", "benchmarks/bench_learning.py", *(argv or sys.argv[1:])])
  text = markdown(result)
  with open(os.path.join(args.out, "learning.md"), "w") as f:
    f.write(text)
  with open(os.path.join(args.out, "learning.json"), "w") as f:
    json.dump(result, f, indent=1)
  plot(result, os.path.join(args.out, "learning.png"))
  print(text)
  print(f"[bench_learning] wrote {args.out}/learning.{{md,json,png}}; training wall time (min): "
        f"{ {k: round(v / 60, 1) for k, v in seconds.items()} }")


if __name__ == "__main__":
  main()
