"""The shared RL loop through the Gin entrypoint: every algorithm runs on one CPU device and on the fake
8-device mesh, logs the paper's metrics, and resumes exactly."""

import json
import os

import numpy as np
import pytest

from mtpo_jax import main
from mtpo_jax.training import rl_trainer
from mtpo_jax.training import rollout as ro
from mtpo_jax.types import Context, Conversation, Turn

SMALL = ["--gin.LoopSettings.batch_size=2", "--gin.ConversationSettings.max_agent_turns=2",
         "--gin.ConversationSettings.input_length=64",
         "--gin.ConversationSettings.max_turn_tokens=8", "--gin.LoopSettings.eval_every=2",
         "--gin.train_rl.eval_contexts=2",
         "--gin.LoopSettings.save_every=2", "--gin.ActorCriticHParams.policy_delay=0",
         "--gin.policy/make_optimizer.learning_rate=1e-3"]
ALGORITHMS = sorted(rl_trainer.ALGORITHMS)
# The default suite runs a representative subset; `pytest -m slow` runs the whole algorithm x mesh matrix.
QUICK = {("mtpo_tau", "cpu_fake8"), ("nash_single_value", "cpu_fake8"), ("reward_rl", "cpu"),
         ("rlhf_single_reward", "cpu")}


def _rows(d):
  with open(os.path.join(d, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _run(algorithm, mesh, d, iterations, extra=()):
  main.run([f"--gin_file=experiments/{algorithm}_tiny.gin", f"--gin_file=meshes/{mesh}.gin", *SMALL,
            f"--gin.MODEL_DIR='{d}'", f"--gin.LoopSettings.num_steps={iterations}", *extra])


@pytest.mark.parametrize("algorithm,mesh", [
    pytest.param(a, m, marks=() if (a, m) in QUICK else pytest.mark.slow)
    for a in ALGORITHMS for m in ("cpu", "cpu_fake8")])
def test_every_algorithm_runs_through_the_entrypoint(tmp_path, algorithm, mesh):
  d = str(tmp_path / algorithm)
  _run(algorithm, mesh, d, 2)
  rows = _rows(d)
  assert [r["step"] for r in rows] == [1, 2]
  for key in ("value_loss", "kl_to_reference", "explained_variance", "end_marker_rate", "conversation_turns",
              "decode_s", "environment_s", "judge_s", "update_s", "decode_tokens_per_s", "update_tokens_per_s"):
    assert all(np.isfinite(r[f"train/{key}"]) for r in rows), key
  spec = rl_trainer.ALGORITHMS[algorithm]
  assert ("train/preference_spread" in rows[0]) == (spec.feedback == "preference")
  if spec.single_turn:
    assert rows[0]["train/conversation_turns"] == 1.0  # one new agent turn per logged state
  assert 0.0 <= rows[-1]["train/win_rate_vs_reference"] <= 1.0
  assert rows[-1]["train/policy_active"] == 1.0 and rows[-1]["train/kl_to_reference"] > 0  # the policy moved
  # The update scores the sampled turns as the sampler did: on-policy (and for every algorithm at iteration 1,
  # where pi_theta = mu = the mixture) log pi_theta(y|x) equals the behaviour log-prob of the rollout.
  on_policy = rows if spec.tau == "none" else rows[:1]
  assert all(abs(r["train/behaviour_log_ratio"]) < 2e-3 for r in on_policy), [r["train/behaviour_log_ratio"]
                                                                             for r in rows]


def test_mtpo_resumes_with_identical_metrics(tmp_path):
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  once = ["--gin.LoopSettings.save_every=1", "--gin.LoopSettings.eval_every=100"]  # evaluate only at the end
  _run("mtpo", "cpu", straight, 2, once)
  _run("mtpo", "cpu", resumed, 1, once)
  _run("mtpo", "cpu", resumed, 2, [*once, "--allow_config_change"])  # a fresh process continues from iteration 1
  a, b = _rows(straight), _rows(resumed)
  assert [r["step"] for r in b] == [1, 2] and "train/win_rate_vs_reference" in b[-1]
  skip = ("_s", "_per_s")  # wall-clock timings differ
  for ra, rb in zip(a, b):
    for k, v in ra.items():
      if k != "time" and not k.endswith(skip) and isinstance(v, float):
        np.testing.assert_allclose(rb[k], v, rtol=1e-5, atol=1e-6, err_msg=f"{k} at step {ra['step']}")
  with pytest.raises(Exception, match="different run"):
    _run("rlhf_multi", "cpu", resumed, 3, ["--allow_config_change"])


def test_bad_configurations_fail_clearly():
  with pytest.raises(ValueError, match="unknown algorithm"):
    rl_trainer.algorithm_spec("ppo_magic", 0.0)
  with pytest.raises(ValueError, match="tau must be 0"):
    rl_trainer.algorithm_spec("mtpo", 0.1)
  with pytest.raises(ValueError, match="set tau > 0"):
    rl_trainer.algorithm_spec("mtpo_tau", 0.0)
  with pytest.raises(TypeError, match="no scalar reward"):
    rl_trainer.judge_rewards(object(), [])


def test_logged_states_wait_for_the_agent():
  ctx = Context("c", {"topic": "x"}, {})
  turns = tuple(Turn(r, t, r == "teacher") for r, t in [("teacher", "a"), ("student", "b"), ("teacher", "c"), ("student", "d")])
  conv = Conversation(ctx, turns, done=True)
  assert ro.state_before(conv, 0).turns == ()
  assert ro.state_before(conv, 1).turns == turns[:2] and not ro.state_before(conv, 1).done
  states = ro.logged_states([conv] * 200, np.random.default_rng(0))
  lengths = np.array([len(s.turns) for s in states])
  assert set(lengths) == {0, 2} and 0.4 < (lengths == 2).mean() < 0.6  # uniform over the two agent turns
  cut = ro.through_last_agent_turn(conv)
  assert cut.turns == turns[:3] and not cut.done  # the student's last reply is not the agent's to answer for
