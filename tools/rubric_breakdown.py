"""Where a policy gains or loses points: the mean of every ground-truth rubric term, per run, on held-out contexts.

    python tools/rubric_breakdown.py --vocab=runs/pipeline/vocabulary/spm.model \\
        --run SFT=runs/pipeline/education/sft --run MTPO=runs/bench_learning/mtpo

Each run plays the same Education Dialogue test contexts with the same sampling keys (evaluation/policies.py);
the table has one row per run and one column per rubric term (oracles/rubric.py), plus the total.
"""

from __future__ import annotations

import argparse

import numpy as np

from mtpo_jax.checkpoints import load_policy
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.evaluation import policies
from mtpo_jax.oracles.rubric import RubricJudge


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
  p.add_argument("--vocab", required=True)
  p.add_argument("--num_contexts", type=int, default=128)
  p.add_argument("--split", default="test", choices=("eval", "test"))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--max_agent_turns", type=int, default=3)
  p.add_argument("--input_length", type=int, default=192)
  p.add_argument("--max_turn_tokens", type=int, default=32)
  p.add_argument("--temperature", type=float, default=1.0)
  p.add_argument("--gin_file", action="append", default=["models/t5_tiny.gin"])
  p.add_argument("--gin", action="append", default=["T5Config.vocab_size = 3072"])
  args = p.parse_args(argv)
  runs = dict(r.split("=", 1) for r in args.run)
  config = policies.model_config(None, args.gin_file, args.gin)
  contexts = registry.contexts("education", args.num_contexts, args.seed, args.split)
  settings = ConversationSettings(max_agent_turns=args.max_agent_turns, input_length=args.input_length,
                                  max_turn_tokens=args.max_turn_tokens, temperature=args.temperature,
                                  vocab_path=args.vocab)
  played = policies.play({k: load_policy(v, config) for k, v in runs.items()}, settings, contexts, seed=args.seed)
  judge = RubricJudge()
  table = {name: [judge.breakdown(c) for c in convs] for name, convs in played.items()}
  terms = list(next(iter(table.values()))[0])
  print(f"mean rubric terms over {len(contexts)} {args.split} contexts\n")
  print("| run | " + " | ".join(terms) + " | total |")
  print("|---|" + "---|" * (len(terms) + 1))
  for name, rows in table.items():
    means = [float(np.mean([r[t] for r in rows])) for t in terms]
    print(f"| {name} | " + " | ".join(f"{m:.2f}" for m in means) + f" | {sum(means):.2f} |")


if __name__ == "__main__":
  main()
