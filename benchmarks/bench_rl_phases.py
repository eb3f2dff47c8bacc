"""One RL iteration (MTPO by default) broken down by phase: policy decode, environment (student), judge, update.

    python benchmarks/bench_rl_phases.py --gin_model=models/t5_tiny.gin --contexts=16 --max_agent_turns=10
    python benchmarks/bench_rl_phases.py --gin_model=models/t5_1_1_base.gin --mesh=meshes/gpu_1.gin ...

Runs `train_rl` (training/rl_trainer.py) through the Gin entrypoint for --iterations iterations in a temporary
directory, from random weights (or --init_checkpoint), with the ground-truth rubric as the judge, and reads the
per-iteration timings the trainer logs (`train/decode_s`, `environment_s`, `judge_s`, `update_s` and token
rates). The first iteration (compilation) is reported apart; the rest are averaged. Prints the device, the
configuration, seconds and share per phase, decode and update tokens/s, conversations/s and iterations/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import gin
import jax

from mtpo_jax import gin_registry

PHASES = ("decode_s", "environment_s", "judge_s", "update_s")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--algorithm", default="mtpo", help="a gin/runs/<algorithm>.gin recipe")
  ap.add_argument("--gin_model", default="models/t5_tiny.gin")
  ap.add_argument("--gin", action="append", default=["T5Config.vocab_size = 3072"], help="extra Gin binding")
  ap.add_argument("--mesh", default="meshes/cpu.gin")
  ap.add_argument("--iterations", type=int, default=4)
  ap.add_argument("--contexts", type=int, default=16, help="contexts per batch (the paper: 16)")
  ap.add_argument("--max_agent_turns", type=int, default=10)
  ap.add_argument("--input_length", type=int, default=512)
  ap.add_argument("--max_turn_tokens", type=int, default=64)
  ap.add_argument("--init_checkpoint", default=None)
  ap.add_argument("--microbatch_rows", type=int, default=64, help="ActorCriticHParams.microbatch_rows (0: all)")
  args = ap.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    bindings = [*args.gin, f"MODEL_DIR = '{tmp}'", f"LoopSettings.num_steps = {args.iterations}",
                f"LoopSettings.batch_size = {args.contexts}",
                f"ConversationSettings.max_agent_turns = {args.max_agent_turns}",
                f"ConversationSettings.input_length = {args.input_length}",
                f"ConversationSettings.max_turn_tokens = {args.max_turn_tokens}",
                "LoopSettings.eval_every = 1000000", "train_rl.eval_contexts = 1", "LoopSettings.save_every = 1000000",
                "ActorCriticHParams.policy_delay = 0", f"ActorCriticHParams.microbatch_rows = {args.microbatch_rows}"]
    if args.init_checkpoint:
      bindings.append(f"SFT_CHECKPOINT = '{args.init_checkpoint}'")
    gin_registry.parse_config([args.gin_model, f"runs/{args.algorithm}.gin", args.mesh], bindings)
    t0 = time.time()
    gin.get_configurable("run")()
    wall = time.time() - t0
    with open(os.path.join(tmp, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f if '"train/decode_s"' in line]
  first, rest = rows[0], rows[1:] or rows[:1]
  mean = lambda key: statistics.mean(r[f"train/{key}"] for r in rest)
  total = sum(mean(p) for p in PHASES)
  copies = 2 if args.algorithm in ("mtpo", "mtpo_tau") else 1
  dev = jax.devices()[0]
  print(f"device: {jax.device_count()} x {getattr(dev, 'device_kind', dev.platform)}; model {args.gin_model}; "
        f"{args.algorithm}, {args.contexts} contexts x {copies} conversations x <= {args.max_agent_turns} agent "
        f"turns of <= {args.max_turn_tokens} tokens, input {args.input_length}")
  print(f"first iteration (compiles): {sum(first[f'train/{p}'] for p in PHASES):.1f} s; whole run {wall:.1f} s")
  print(f"steady iteration (mean of {len(rest)}): {total:.2f} s -> {1 / total:.3f} iterations/s, "
        f"{args.contexts * copies / total:.1f} conversations/s, mean {mean('conversation_turns'):.1f} turns")
  for p in PHASES:
    print(f"  {p[:-2]:<12} {mean(p):7.2f} s  {mean(p) / total:6.1%}")
  print(f"  decode {mean('decode_tokens_per_s'):,.0f} tokens/s; update {mean('update_tokens_per_s'):,.0f} tokens/s")


if __name__ == "__main__":
  main()
