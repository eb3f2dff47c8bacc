"""Pair data for the learned judges (training/pair_sources.py): policy pairs and single-turn pairs have the
paper's structure, their labels are the judge's on what the paper says it sees (recomputed here independently),
sampling is deterministic, the cache round-trips and a resumed run reuses it, bad settings fail clearly, and
train_scorer runs end to end on single_turn_value pairs.

A tiny random T5 over the committed vocabulary is the policy (EOS nudged up so turns stay short); every sampler
call fits one batch bucket, so each Sampler compiles once."""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.text.vocabulary import EOS_ID
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.models.t5 import T5
from mtpo_jax.oracles import learned
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.envs import registry
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.training import pair_sources as ps
from mtpo_jax.training import rollout as ro
from mtpo_jax.training import scorer_trainer as st
from mtpo_jax.checkpoints import Checkpointer, CheckpointError
from mtpo_jax.training.loop import LoopSettings
from mtpo_jax.training.optimizers import make_optimizer
from mtpo_jax.training.state import TrainState
from mtpo_jax.types import Turn

VOCAB = project_vocabulary()
CONFIG = tiny_config(3072, layers=1)
SAMPLING = ConversationSettings(input_length=128, max_turn_tokens=12, max_agent_turns=3)
N, SEED = 4, 0


def _random_params(config, seed=0):
  """Random T5 parameters drawn in numpy (no compiled init): unit norms, N(0, 1) embeddings, N(0, 1/fan_in)
  kernels; EOS made likelier so turns stay a few tokens long."""
  x = jnp.ones((1, 4), jnp.int32)
  shapes = nn.unbox(jax.eval_shape(T5(config).init, jax.random.PRNGKey(0), x, x)["params"])
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['scale']"):
      return np.ones(leaf.shape, np.float32)
    fan_in = 1 if name == "['token_embedder']" else leaf.shape[0] * (leaf.shape[1] if name.endswith("['out']") else 1)
    return rng.normal(0.0, fan_in ** -0.5, leaf.shape).astype(np.float32)

  params = jax.tree_util.tree_map_with_path(draw, shapes)
  params["logits_dense"][:, EOS_ID] += 2.0
  return params


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
  """(TurnPolicy, checkpoints directory holding the same parameters)."""
  params = _random_params(CONFIG)
  directory = str(tmp_path_factory.mktemp("sft") / "checkpoints")
  ckpt = Checkpointer(directory, save_every=1)
  ckpt.save(1, TrainState.create(params, optax.sgd(0.1), jax.random.PRNGKey(0)), {"data_position": 1}, force=True)
  ckpt.close()
  turn_policy = ps.make_policy(params, CONFIG, SAMPLING, VOCAB)
  return turn_policy, directory


def _single_turn(policy, kind, judge=None, split="train"):
  judge = judge or ps.default_judge(f"single_turn_{kind}")
  return ps.sample_single_turn(policy, SAMPLING, N, SEED, split, judge, kind)


def test_policy_pairs_are_two_policy_conversations_per_context(policy):
  turn_policy, _ = policy
  pairs = ps.sample_policy_pairs(turn_policy, SAMPLING, N, SEED, "train", RubricJudge())
  contexts = registry.contexts("education", N, SEED, "train")
  assert [a.context for a, _, _ in pairs] == [b.context for _, b, _ in pairs] == contexts
  for a, b, _ in pairs:
    assert a.done and b.done and a.turns != b.turns and a.turns[0].is_agent
  a, b, p = map(list, zip(*pairs))
  np.testing.assert_array_equal(p, RubricJudge().preference(a, b))
  assert ps.sample_policy_pairs(turn_policy, SAMPLING, N, SEED, "train", RubricJudge()) == pairs  # deterministic
  held_out = ps.sample_policy_pairs(turn_policy, SAMPLING, N, SEED, "eval", RubricJudge())
  assert not {x.context.context_id for x, _, _ in held_out} & {x.context.context_id for x in a}


def test_single_turn_reward_pairs_differ_in_the_last_agent_turn_only(policy):
  turn_policy, _ = policy
  s = _single_turn(turn_policy, "reward")
  assert s.final_a is None and len(s.a) == len(s.b) == len(s.states) == N
  for x, a, b in zip(s.states, s.a, s.b):
    assert not x.done and (not x.turns or not x.turns[-1].is_agent)  # the state waits for the agent
    assert a.context == b.context == x.context
    assert a.turns[:-1] == b.turns[:-1] == x.turns  # same history, one new turn each, no student reply
    assert a.turns[-1].is_agent and b.turns[-1].is_agent
    # the learned judges' inputs show the history and the candidate turn
    text = learned.reward_model_inputs([a], VOCAB, 256)[0]
    assert text.endswith(f"Teacher: {a.turns[-1].text}".rstrip()) and all(t.text in text for t in x.turns)
    pair_text = learned.preference_model_inputs([a], [b], VOCAB, 512)[0]
    assert f"Teacher: {a.turns[-1].text}" in pair_text.split("\nB:\n")[0]
    assert pair_text.rstrip().endswith(f"Teacher: {b.turns[-1].text}".rstrip())
  # the turn h is drawn over the played conversations' agent turns, not always the first
  assert len({x.num_agent_turns for x in s.states}) > 1
  np.testing.assert_array_equal(s.p, RubricJudge(partial=True).preference(s.a, s.b))
  assert len(set(np.round(s.p, 6))) > 1  # not a constant label
  again = _single_turn(turn_policy, "reward")
  assert again.a == s.a and again.b == s.b and np.array_equal(again.p, s.p)


def test_single_turn_value_labels_judge_the_continued_conversations(policy):
  turn_policy, _ = policy
  s = _single_turn(turn_policy, "value")
  reward = _single_turn(turn_policy, "reward")
  assert s.a == reward.a and s.b == reward.b  # the same stored pairs; only the label differs
  # recompute independently from the documented sampling keys: iteration 1 = the alternatives, 2 + k =
  # continuation of copy k, with the policy that sampled them
  env = registry.make_environment(SAMPLING, SEED)
  alts = ro.collect(env, turn_policy, starts=s.states, copies=2, seed=SEED, iteration=1,
                    max_new_agent_turns=1).conversations
  finals = []
  for k in (0, 1):
    live = [c for c in alts[k::2] if not c.done]
    cont = iter(ro.collect(env, turn_policy, starts=live, seed=SEED, iteration=2 + k).conversations)
    finals.append([c if c.done else next(cont) for c in alts[k::2]])
  assert s.final_a == finals[0] and s.final_b == finals[1]
  for stored, final in zip(s.a + s.b, s.final_a + s.final_b):
    assert final.done and final.turns[:len(stored.turns)] == stored.turns
  np.testing.assert_array_equal(s.p, RubricJudge().preference(finals[0], finals[1]))


def test_partial_rubric_does_not_punish_an_unfinished_prefix():
  record = generator.generate(1, 3, "eval")[0]
  conv = record_to_conversation(record, "c")
  agent = [i for i, t in enumerate(conv.turns) if t.is_agent]
  state = dataclasses.replace(conv, turns=conv.turns[:agent[1]], done=False)
  teach = state.append(conv.turns[agent[1]])
  close = state.append(Turn("teacher", "Great work today. [end of conversation]", True), done=True)
  give_up = state.append(Turn("teacher", "This is not working, I give up. [end of conversation]", True), done=True)
  full, partial = RubricJudge(), RubricJudge(partial=True)
  assert full.breakdown(teach)["ending"] == -0.5 and partial.breakdown(teach)["ending"] == 0.0
  for judge in (full, partial):  # a finished conversation is judged the same
    # a proper close earns its +0.5 in proportion to the teaching turns given (the rubric's gate: substance is
    # -1 per teaching turn short of 3); giving up costs the full -0.5
    taught = 3 + judge.breakdown(close)["substance"]
    assert 0 < taught < 3 and judge.breakdown(close)["ending"] == pytest.approx(0.5 * taught / 3)
    assert judge.breakdown(give_up)["ending"] == -0.5
    assert judge.breakdown(conv) == full.breakdown(conv)
  # only the unfinished candidate moves, by the 0.5 of "never ended": going on gains 0.5 on a proper close and on
  # giving up. With the teaching gate even the full rubric prefers teaching on to a polite close after one
  # lesson (the close's bonus is a third of 0.5); the partial one prefers it more
  for other in (close, give_up):
    gap = lambda judge: judge.score([teach])[0] - judge.score([other])[0]
    assert gap(partial) == pytest.approx(gap(full) + 0.5)
  assert 0.5 < full.preference([teach], [close])[0] < partial.preference([teach], [close])[0]
  assert partial.preference([teach], [give_up])[0] > full.preference([teach], [give_up])[0] > 0.5


def test_cache_round_trips_and_a_resumed_run_reuses_it(policy, tmp_path):
  turn_policy, checkpoint = policy
  calls = []

  def counting():
    calls.append(1)
    return turn_policy

  data = lambda source: ps.PairData(source, seed=SEED, judge=RubricJudge(), policy_checkpoint=checkpoint,
                                    conversation=SAMPLING)
  args = dict(cache_dir=str(tmp_path))
  first = ps.source_pairs(data("single_turn_value"), "eval", N, policy=counting, **args)
  path = tmp_path / "pairs_eval.jsonl"
  header, cached = ps.read_pairs(str(path))
  assert cached == first and header["pair_source"] == "single_turn_value" and len(calls) == 1
  assert all(type(p) is float for _, _, p in cached)  # exact labels, not rounded
  again = ps.source_pairs(data("single_turn_value"), "eval", N, policy=lambda: pytest.fail("resampled"), **args)
  assert again == first
  for a, b, _ in first:  # full contexts (hidden preference, extra ground truth) survive the round trip
    assert ps.conversation_from_dict(json.loads(json.dumps(ps.conversation_to_dict(a)))) == a
  with pytest.raises(ps.PairCacheError, match="pairs_eval.jsonl was written with"):
    ps.source_pairs(data("single_turn_value"), "eval", N + 1, policy=counting, **args)
  with pytest.raises(ps.PairCacheError, match="pairs_eval.jsonl was written with"):
    ps.source_pairs(data("single_turn_reward"), "eval", N, policy=counting, **args)
  lines = path.read_text().splitlines()
  path.write_text("\n".join(lines[:-1]) + "\n")  # a lost line
  with pytest.raises(ps.PairCacheError, match="pairs_eval.jsonl holds 3 pairs"):
    ps.source_pairs(data("single_turn_value"), "eval", N, policy=counting, **args)
  path.write_text("\n".join(lines[:-1] + [lines[-1][:40]]) + "\n")  # a cut line
  with pytest.raises(ps.PairCacheError, match="pairs_eval.jsonl is corrupt"):
    ps.source_pairs(data("single_turn_value"), "eval", N, policy=counting, **args)
  assert len(calls) == 1


def test_bad_sources_and_checkpoints_fail_clearly(tmp_path):
  optimizer = make_optimizer("adamw", learning_rate=1e-3)
  with pytest.raises(ValueError, match="unknown pair_source 'scripted'"):
    ps.PairData("scripted")
  with pytest.raises(ValueError, match="set policy_checkpoint"):
    ps.PairData("policy")
  with pytest.raises(ValueError, match="exists for 'education' only"):
    ps.PairData("single_turn_value", policy_checkpoint="x", conversation=ConversationSettings("negotiation"))
  missing = str(tmp_path / "no_such_run" / "checkpoints")
  with pytest.raises(CheckpointError, match=missing):
    st.train_scorer(str(tmp_path / "c"), CONFIG, optimizer=optimizer,
                    pairs=ps.PairData("single_turn_reward", policy_checkpoint=missing))
  assert not os.path.exists(tmp_path / "c" / "checkpoints" / "1")  # nothing trained
  with pytest.raises(ValueError, match="does not match its T5Config"):
    ps.policy_from_checkpoint(_write_bad_checkpoint(tmp_path), CONFIG, SAMPLING)
  with pytest.raises(ValueError, match="unknown single-turn kind"):
    ps.sample_single_turn(None, SAMPLING, 1, 0, "train", RubricJudge(), "q")


def _write_bad_checkpoint(tmp_path):
  directory = str(tmp_path / "bad")
  ckpt = Checkpointer(directory, save_every=1)
  ckpt.save(1, TrainState.create({"w": jnp.zeros(3)}, optax.sgd(0.1), jax.random.PRNGKey(0)), {}, force=True)
  ckpt.close()
  return directory


def test_reward_model_trains_on_single_turn_value_pairs(policy, tmp_path, monkeypatch):
  """One real run: it samples the train split from the checkpoint and reuses the eval split cached beforehand,
  as a resumed run would (checkpoint resume itself: test_scorers.py)."""
  turn_policy, checkpoint = policy
  d = str(tmp_path / "rm")
  os.makedirs(d)
  data = ps.PairData("single_turn_value", num_train=N, num_eval=N, seed=SEED, policy_checkpoint=checkpoint,
                     conversation=SAMPLING)
  cached = ps.source_pairs(data, "eval", N, policy=lambda: turn_policy, cache_dir=d)
  sampled_splits = []
  real = ps.sample_single_turn
  monkeypatch.setattr(ps, "sample_single_turn", lambda policy, settings, n, seed, split, *a:
                      sampled_splits.append(split) or real(policy, settings, n, seed, split, *a))
  out = st.train_scorer(d, CONFIG, optimizer=make_optimizer("adamw", learning_rate=1e-3), pairs=data,
                        loop=LoopSettings(num_steps=2, batch_size=8, log_every=1, eval_every=1000, save_every=2),
                        task_feature_lengths={"inputs": 128})
  assert sampled_splits == ["train"]  # the eval pairs came from the cache
  assert np.isfinite(out["loss"]) and np.isfinite(out["eval_loss"])
  header, pairs = ps.read_pairs(os.path.join(d, "pairs_train.jsonl"))
  assert header["pair_source"] == "single_turn_value" and header["policy_checkpoint"] == checkpoint
  assert header["judge"] == {"class": "RubricJudge", "partial": False, "temperature": 1.0}
  # the checkpoint's policy sampled exactly what the in-memory one does
  s = real(turn_policy, SAMPLING, N, SEED, "train", RubricJudge(), "value")
  assert pairs == list(zip(s.a, s.b, s.p.tolist()))
  assert ps.read_pairs(os.path.join(d, "pairs_eval.jsonl"))[1] == cached
  report = json.load(open(os.path.join(d, "eval_report.json")))
  assert report["kind"] == "reward" and report["examples"] == N and report["step"] == 2
