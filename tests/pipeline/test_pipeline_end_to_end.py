"""The whole pipeline through `python -m mtpo_jax.main` on a micro budget (slow: about 5 CPU minutes; run with
`pytest -m slow tests/pipeline`): every kind of stage runs (with the learned student as the environment), results.md and the matrices are written, and a
second run of the same command skips every stage."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mtpo_jax.pipeline import stages

pytestmark = pytest.mark.slow

MICRO = [
    "PipelinePlan.seeds = [0]", "PipelinePlan.education_methods = ['sft', 'rlhf_reward', 'mtpo', 'iterative_ppo']",
    "PipelinePlan.negotiation_methods = ['sft', 'reward_rl', 'mtpo_learned']",
    "PipelinePlan.education_train = 60", "PipelinePlan.education_eval = 8", "PipelinePlan.negotiation_train = 40",
    "PipelinePlan.negotiation_eval = 8", "PipelinePlan.vocab_size = 1500",
    "PipelinePlan.environment_student = 'learned'",
]


def micro_overrides() -> str:
  sft = ["LoopSettings.num_steps = 4", "LoopSettings.batch_size = 4", "train_sft.task_feature_lengths = {'inputs': 64, 'targets': 16}",
         "LoopSettings.eval_every = 4", "LoopSettings.save_every = 4"]
  scorer = ["PairData.num_train = 8", "PairData.num_eval = 4", "LoopSettings.num_steps = 2",
            "LoopSettings.batch_size = 4", "train_scorer.task_feature_lengths = {'inputs': 64}", "LoopSettings.eval_every = 2",
            "LoopSettings.save_every = 2", "ConversationSettings.max_agent_turns = 2",
            "ConversationSettings.input_length = 64", "ConversationSettings.max_turn_tokens = 8"]
  rl = ["LoopSettings.num_steps = 1", "LoopSettings.batch_size = 4", "ConversationSettings.max_agent_turns = 2",
        "ConversationSettings.input_length = 64", "ConversationSettings.max_turn_tokens = 8",
        "train_rl.eval_contexts = 4",
        "LoopSettings.eval_every = 1", "LoopSettings.save_every = 1", "ActorCriticHParams.policy_delay = 0"]
  ippo = ["LoopSettings.num_steps = 1", "LoopSettings.batch_size = 4",
          "train_iterative_ppo.contexts_per_collect = 4", "ConversationSettings.max_agent_turns = 2",
          "ConversationSettings.input_length = 64", "ConversationSettings.max_turn_tokens = 8",
          "QSettings.steps = 2", "QSettings.batch_size = 4",
          "PPOHParams.steps = 1", "PPOHParams.batch_size = 4"]
  ev = ["--num_contexts=4", "--max_agent_turns=2", "--input_length=64", "--max_turn_tokens=8", "--resamples=50"]
  table = {"sft": sft, "sft_student": sft, "negotiation_sft": sft, "scorer": scorer, "negotiation_scorer": scorer, "rl": rl,
           "negotiation_rl": rl, "iterative_ppo": ippo, "evaluate": ev, "negotiation_evaluate": ev}
  return "PipelinePlan.overrides = " + json.dumps(table)


def run(model_dir: str) -> subprocess.CompletedProcess:
  argv = [sys.executable, "-m", "mtpo_jax.main", "--gin_file=experiments/pipeline_tiny.gin",
          f"--gin.MODEL_DIR='{model_dir}'", *[f"--gin_bindings={b}" for b in [*MICRO, micro_overrides()]]]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # stages use meshes/cpu.gin's one device
  return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800,
                        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_micro_pipeline_runs_every_stage_kind_and_resumes(tmp_path):
  model_dir = str(tmp_path / "pipe")
  first = run(model_dir)
  assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
  results = open(os.path.join(model_dir, "results.md")).read()
  assert "Table 1 analogue" in results and "Table 3 analogue" in results and "| MTPO (pref. data) |" in results
  edu = json.load(open(os.path.join(model_dir, "education", "evaluation", "win_matrix.json")))
  assert edu["names"] == ["SFT", "RLHF-r", "MTPO", "IterPPO"]
  m = np.array(edu["matrix"])
  assert np.array_equal(m + m.T, np.ones_like(m))
  for name in ("win_matrix.png", "curves.png", "samples.md"):
    assert os.path.getsize(os.path.join(model_dir, "education", "evaluation", name)) > 0
  # the pm reused the rm's sampled pairs: identical caches
  judges = os.path.join(model_dir, "education", "judges")
  assert sorted(os.listdir(judges)) == ["pm_conversation", "rm_conversation", "rm_single_turn_reward"]
  pairs = [open(os.path.join(judges, j, "pairs_train.jsonl")).read() for j in ("rm_conversation", "pm_conversation")]
  assert pairs[0] == pairs[1] and pairs[0].count("\n") == 9  # header + 8 pairs
  assert sorted(os.listdir(os.path.join(model_dir, "negotiation", "judges"))) == ["pm"]
  second = run(model_dir)
  assert second.returncode == 0, second.stderr[-3000:]
  done = [d for d, _, files in os.walk(model_dir) if stages.MARKER in files]
  assert f"{len(done)} of {len(done)} stages already complete" in second.stdout
  assert "start" not in second.stdout.replace("already complete", "")
