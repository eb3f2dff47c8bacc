"""MTPO through the Gin entrypoint on the fake 8-device mesh: runs, logs the paper's metrics, resumes."""

import json
import os

from mtpo_jax import main

ARGS = ["--gin_file=experiments/mtpo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.train_mtpo.contexts_per_batch=4",
        "--gin.train_mtpo.max_agent_turns=2", "--gin.train_mtpo.input_length=64", "--gin.train_mtpo.max_turn_tokens=8",
        "--gin.train_mtpo.eval_every=2", "--gin.train_mtpo.eval_contexts=4", "--gin.train_mtpo.save_every=2",
        "--gin.ActorCriticHParams.policy_delay=0"]


def _rows(d):
  with open(os.path.join(d, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_mtpo_runs_logs_and_resumes(tmp_path):
  d = str(tmp_path / "mtpo")
  main.run(ARGS + [f"--gin.MODEL_DIR='{d}'", "--gin.train_mtpo.num_iterations=2"])
  rows = _rows(d)
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("value_loss", "kl_to_reference", "explained_variance", "preference_spread", "end_marker_rate",
              "collect_s", "judge_s", "update_s", "decode_tokens_per_s"):
    assert all(f"train/{key}" in r for r in rows), key
  assert 0.0 <= rows[-1]["train/win_rate_vs_reference"] <= 1.0
  assert rows[-1]["train/policy_active"] == 1.0 and rows[-1]["train/kl_to_reference"] > 0  # the policy moved
  main.run(ARGS + [f"--gin.MODEL_DIR='{d}'", "--gin.train_mtpo.num_iterations=3"])
  assert [r["step"] for r in _rows(d)] == [1, 2, 3]  # resumed at iteration 2, not from scratch
