"""RL contexts from SeqIO tasks (data/task_contexts.py): the rl_contexts tasks carry exactly the contexts the
environment's records give, iteration i's contexts are a hand-checkable permutation, the file cache round-trips
and names its bad lines, and RL and Iterative PPO play a task's contexts through the entrypoint."""

import dataclasses

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from mtpo_jax import data_cli, main  # noqa: E402
from mtpo_jax.data import education_examples as ex  # noqa: E402
from mtpo_jax.data import task_contexts as tc  # noqa: E402
from mtpo_jax.envs.education import generator  # noqa: E402
from mtpo_jax.envs.education.convert import record_to_conversation  # noqa: E402
from mtpo_jax.envs.negotiation import generator as negotiation_generator  # noqa: E402

RL = ["--gin_file=experiments/mtpo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.batch_size=2",
      "--gin.ConversationSettings.max_agent_turns=2", "--gin.ConversationSettings.input_length=64",
      "--gin.ConversationSettings.max_turn_tokens=8", "--gin.LoopSettings.eval_every=100",
      "--gin.train_rl.eval_contexts=2", "--gin.LoopSettings.save_every=2", "--gin.ActorCriticHParams.policy_delay=0",
      "--gin.LoopSettings.num_steps=2", "--gin.train_rl.contexts=@ContextSource()"]


def _education_context_task(name: str, records) -> str:
  """A task registered with plain SeqIO whose rows carry the education rl_context examples."""
  import tensorflow as tf
  from mtpo_tasks.text_tasks import text_features, text_preprocessors
  rows = [ex.rl_context(r) for r in records]
  keys = ("inputs", "targets", "context")

  def dataset_fn(split, shuffle_files, seed=None):
    return tf.data.Dataset.from_generator(lambda: ({k: r[k] for k in keys} for r in rows),
                                          output_signature={k: tf.TensorSpec((), tf.string) for k in keys})
  seqio.TaskRegistry.remove(name)
  seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]),
                         preprocessors=text_preprocessors(), output_features=text_features(), metric_fns=[])
  return name


def test_the_context_feature_is_the_records_context():
  for r in generator.generate(5, seed=2, split="train"):
    assert tc.context_from_json(ex.rl_context(r)["context"]) == record_to_conversation(r).context
  got = tc.read_task_contexts("negotiation_rl_contexts", "validation")
  from mtpo_tasks import negotiation
  records = negotiation._records("validation")
  assert len(got) == len(records) == 400
  for context, record in zip(got[:20], records):
    expected = negotiation_generator.record_to_conversation({**record, "conversation": []}).context
    assert context == dataclasses.replace(expected, extra={})  # the start state: no scripted strategy


def _base(context) -> str:
  return context.context_id.split("#")[0]


def test_iteration_contexts_are_epoch_permutations_by_hand():
  contexts = [record_to_conversation(r, f"c{k}").context for k, r in enumerate(generator.generate(5, seed=1))]
  order = np.concatenate([np.random.default_rng([9, e]).permutation(5) for e in range(3)])
  for i in (3, 0, 2):  # positions 2i, 2i + 1 of the stream, any order of calls
    got = tc.contexts_for_iteration(contexts, 2, i, seed=9)
    assert [c.context_id for c in got] == [f"c{order[p]}#{p}" for p in (2 * i, 2 * i + 1)]
    assert [c.visible for c in got] == [contexts[order[p]].visible for p in (2 * i, 2 * i + 1)]
  first_epoch = [_base(c) for i in range(3) for c in tc.contexts_for_iteration(contexts, 2, i, 9)][:5]
  assert sorted(first_epoch) == [f"c{k}" for k in range(5)]
  assert len({c.context_id for c in tc.contexts_for_iteration(contexts, 8, 0, 9)}) == 8  # repeats stay distinct


def test_the_contexts_file_round_trips_and_names_a_bad_line(tmp_path):
  contexts = [record_to_conversation(r).context for r in generator.generate(3, seed=0)]
  path = str(tmp_path / "contexts.jsonl")
  tc.write_contexts_file(path, contexts)
  assert tc.read_contexts_file(path) == contexts
  (tmp_path / "bad.jsonl").write_text(open(path).read() + "{not json\n")
  with pytest.raises(ValueError, match="bad.jsonl:4: not a context line"):
    tc.read_contexts_file(str(tmp_path / "bad.jsonl"))
  with pytest.raises(FileNotFoundError, match="mtpo-data contexts"):
    tc.read_contexts_file(str(tmp_path / "none.jsonl"))
  with pytest.raises(ValueError, match="task or file, not both"):
    tc.ContextSource(task="a", file="b")


def test_rl_and_iterative_ppo_play_the_tasks_contexts(tmp_path, monkeypatch):
  records = generator.generate(6, seed=4, split="train")
  task = _education_context_task("test_education_rl_contexts", records)
  ids = {r_id for r_id in (tc.context_from_json(ex.rl_context(r)["context"]).context_id for r in records)}
  played = []
  real = tc.contexts_for_iteration
  monkeypatch.setattr(tc, "contexts_for_iteration", lambda *a: played.append(real(*a)) or played[-1])
  run = tmp_path / "rl"
  assert main.cli([*RL, f"--gin.MODEL_DIR='{run}'", f"--gin.ContextSource.task='{task}'"]) == 0
  assert [len(p) for p in played] == [2, 2] and {_base(c) for p in played for c in p} <= ids
  cached = tc.read_contexts_file(str(run / tc.CACHE_FILE))
  assert [c.context_id for c in cached] == [tc.context_from_json(ex.rl_context(r)["context"]).context_id
                                           for r in records]
  # The offline step writes the same contexts; a run on the file plays the same iterations.
  out = str(tmp_path / "contexts.jsonl")
  assert data_cli.main(["contexts", task, "--out", out]) == 0
  assert tc.read_contexts_file(out) == cached
  played.clear()
  assert main.cli([*RL, f"--gin.MODEL_DIR='{tmp_path / 'rl_file'}'", f"--gin.ContextSource.file='{out}'"]) == 0
  assert [[c.context_id for c in p] for p in played] == [[c.context_id for c in p] for p in
                                                         [real(cached, 2, i, 0) for i in range(2)]]
  played.clear()
  ippo = ["--gin_file=experiments/iterative_ppo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.T5Config.d_model=32",
          "--gin.T5Config.d_kv=8", "--gin.T5Config.d_ff=64", "--gin.ConversationSettings.input_length=64",
          "--gin.ConversationSettings.max_turn_tokens=8", "--gin.ConversationSettings.max_agent_turns=2",
          "--gin.QSettings.steps=2", "--gin.PPOHParams.steps=1", "--gin.LoopSettings.num_steps=1",
          "--gin.LoopSettings.batch_size=8", "--gin.QSettings.batch_size=8", "--gin.PPOHParams.batch_size=8",
          "--gin.train_iterative_ppo.contexts_per_collect=8", "--gin.train_iterative_ppo.contexts=@ContextSource()",
          f"--gin.ContextSource.file='{out}'", f"--gin.MODEL_DIR='{tmp_path / 'ippo'}'"]
  assert main.cli(ippo) == 0
  assert len(played) == 1 and {_base(c) for c in played[0]} <= ids
