"""The trainers' SeqIO data path (data/task_data.py, tasks/text_tasks.py) against independent references:
token ids against the sentencepiece library and a hand-written left trim, batch order against a hand-built
permutation, shards against the examples they partition, mixtures against their rates."""

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from mtpo_jax.data import task_data  # noqa: E402
from mtpo_jax.data.task_data import TaskBatches, TaskDataError, TaskFeed, rows_per_task  # noqa: E402
from mtpo_jax.testing import project_vocabulary  # noqa: E402
from mtpo_tasks.text_tasks import register_text_task  # noqa: E402

WORDS = "the teacher asks the student about volcanoes and rivers while the lesson goes on".split()


def _examples(tag: str, n: int):
  """Example k: an input of k + 3 words (some exceed the feature length) and a short target naming k."""
  def examples(split: str):
    offset = 0 if split == "train" else 1000
    return [{"inputs": f"{tag} " + " ".join(WORDS[(k + j) % len(WORDS)] for j in range(k % 11 + 3)),
             "targets": f"reply {k + offset}"} for k in range(n)]
  return examples


@pytest.fixture(scope="module")
def tasks():
  register_text_task("test_task_a", _examples("alpha", 10))
  register_text_task("test_task_b", _examples("beta", 7))
  seqio.MixtureRegistry.remove("test_mixture")
  seqio.MixtureRegistry.add("test_mixture", [("test_task_a", 3.0), ("test_task_b", 1.0)])
  return _examples("alpha", 10)


def _by_hand(text: str, length: int, keep_left: bool) -> np.ndarray:
  """Python sentencepiece ids, cut to length - 1 (from the left for inputs), EOS (1), PAD (0) to `length`."""
  ids = project_vocabulary().encode(text)
  ids = ids[-(length - 1):] if keep_left else ids[:length - 1]
  return np.array(ids + [1] + [0] * (length - 1 - len(ids)), np.int32)


def test_rows_match_sentencepiece_and_a_hand_trim(tasks):
  lengths = {"inputs": 8, "targets": 6}
  arrays = task_data.read_converted("test_task_a", "train", lengths)
  examples = tasks("train")
  assert arrays["encoder_input_tokens"].shape == (10, 8)
  long_inputs = 0
  for k, e in enumerate(examples):
    np.testing.assert_array_equal(arrays["encoder_input_tokens"][k], _by_hand(e["inputs"], 8, keep_left=True))
    target = _by_hand(e["targets"], 6, keep_left=False)
    np.testing.assert_array_equal(arrays["decoder_target_tokens"][k], target)
    # Teacher forcing: the decoder reads the target shifted right behind a 0 start token, and is scored on
    # every non-padding position.
    np.testing.assert_array_equal(arrays["decoder_input_tokens"][k], np.concatenate([[0], target[:-1]]))
    np.testing.assert_array_equal(arrays["decoder_loss_weights"][k], (target != 0).astype(np.float32))
    long_inputs += len(project_vocabulary().encode(e["inputs"])) > 7
  assert long_inputs >= 3  # the left trim was exercised


def test_batch_i_is_the_epoch_permutation_and_does_not_depend_on_history(tasks):
  feed = TaskFeed("test_task_a", {"inputs": 16, "targets": 6})
  arrays = task_data.read_converted("test_task_a", "train", feed.task_feature_lengths)
  b = TaskBatches(feed, batch_size=4, seed=5)
  # Positions 0..11 of the stream: epoch 0 (10 examples) then epoch 1, each default_rng([seed, epoch]).
  order = np.concatenate([np.random.default_rng([5, e]).permutation(10) for e in (0, 1)])
  for i in (2, 0, 1):  # any order: nothing is carried between calls
    np.testing.assert_array_equal(b.batch(i)["encoder_input_tokens"],
                                  arrays["encoder_input_tokens"][order[4 * i:4 * i + 4]])
  resumed = TaskBatches(feed, batch_size=4, seed=5)
  np.testing.assert_array_equal(resumed.batch(2)["decoder_target_tokens"], b.batch(2)["decoder_target_tokens"])
  epoch = np.concatenate([b.batch(i)["encoder_input_tokens"] for i in range(3)])[:10]
  assert len({r.tobytes() for r in epoch}) == 10  # an epoch visits every example once
  assert not np.array_equal(TaskBatches(feed, 4, seed=6).batch(0)["encoder_input_tokens"],
                            b.batch(0)["encoder_input_tokens"])


def test_shards_partition_the_examples_and_rows_read_only_their_shards(tasks):
  lengths = {"inputs": 16, "targets": 6}
  whole = task_data.read_converted("test_task_a", "train", lengths)["decoder_target_tokens"]
  parts = [task_data.read_converted("test_task_a", "train", lengths, s, 2)["decoder_target_tokens"] for s in (0, 1)]
  # seqio.ShardInfo(s, 2) on a single-file source: example k goes to shard k % 2.
  np.testing.assert_array_equal(parts[0], whole[0::2])
  np.testing.assert_array_equal(parts[1], whole[1::2])

  calls = []

  def spy(*args):
    calls.append(args[3])
    return task_data.read_converted(*args)
  feed = TaskFeed("test_task_a", lengths, data_shards=2)
  full = TaskBatches(feed, 8, seed=1).batch(3)
  halves = [TaskBatches(feed, 8, seed=1, reader=spy) for _ in range(2)]
  top, bottom = halves[0].batch(3, slice(0, 4)), halves[1].batch(3, slice(4, 8))
  assert calls == [0, 1]  # each "process" read only the shard its rows fall in
  for key in full:
    np.testing.assert_array_equal(np.concatenate([top[key], bottom[key]]), full[key])
  # Rows 0..3 come from shard 0 (even examples), rows 4..7 from shard 1 (odd examples).
  even = {r.tobytes() for r in whole[0::2]}
  assert all(r.tobytes() in even for r in top["decoder_target_tokens"])
  assert not any(r.tobytes() in even for r in bottom["decoder_target_tokens"])


def test_mixture_batches_hold_the_rates_exactly(tasks):
  feed = TaskFeed("test_mixture", {"inputs": 64, "targets": 6})
  b = TaskBatches(feed, batch_size=8, seed=0)
  vocab = project_vocabulary()
  tags = []
  for i in range(5):
    tags += [vocab.decode(list(row)).split()[0] for row in b.batch(i)["encoder_input_tokens"]]
    assert tags[-8:].count("alpha") == 6 and tags[-8:].count("beta") == 2  # rate 3 : 1 over 8 rows
  assert tags[:8] != sorted(tags[:8])  # rows of the two tasks are shuffled within the batch
  with pytest.raises(TaskDataError, match="no row for test_task_b"):
    TaskBatches(feed, batch_size=2)


def test_rows_per_task_by_hand():
  assert rows_per_task([3, 1], 8) == [6, 2]
  assert rows_per_task([1, 1, 1], 8) == [3, 3, 2]  # remainders tie: the earlier task gets the row
  assert rows_per_task([0.5, 0.3, 0.2], 7) == [4, 2, 1]  # 3.5, 2.1, 1.4 -> floors 3, 2, 1, one row to 0.5
  assert sum(rows_per_task([0.013, 5, 2.2], 31)) == 31


def test_bad_settings_name_what_is_wrong(tasks):
  with pytest.raises(TaskDataError, match="'no_such_task' is not a registered SeqIO task"):
    TaskBatches(TaskFeed("no_such_task", {"inputs": 8, "targets": 8}), 4)
  with pytest.raises(TaskDataError, match="data_shards = 3 must divide the batch size 8"):
    TaskBatches(TaskFeed("test_task_a", {"inputs": 8, "targets": 8}, data_shards=3), 8)
  with pytest.raises(TaskDataError, match="needs \\['targets'\\]"):
    task_data.read_converted("test_task_a", "train", {"inputs": 8})
  with pytest.raises(TaskDataError, match="no split 'test'"):
    task_data.read_converted("test_task_a", "test", {"inputs": 8, "targets": 8})
  with pytest.raises(TaskDataError, match="shard 11 of 12 holds no examples"):
    task_data.read_converted("test_task_a", "train", {"inputs": 8, "targets": 8}, 11, 12)
  with pytest.raises(TaskDataError, match="task module 'not_a_module'"):
    task_data.get_provider("test_task_a", ["not_a_module"])


def test_packed_rows_give_each_example_its_unpacked_logits(tasks):
  """SeqIO's packing (EncDecFeatureConverter(pack=True)) and the model's segment masks: every example packed
  into a row gets exactly the logits it gets alone in its own row."""
  import jax
  from mtpo_jax.models.t5 import T5
  from mtpo_jax.testing import tiny_config
  lengths = {"inputs": 64, "targets": 16}
  packed = task_data.read_converted("test_task_a", "train", lengths, use_packing=True)
  alone = task_data.read_converted("test_task_a", "train", lengths)
  assert len(packed["encoder_input_tokens"]) < len(alone["encoder_input_tokens"])  # rows really hold several
  model = T5(tiny_config(3072))
  params = model.init(jax.random.PRNGKey(0), alone["encoder_input_tokens"][:1],
                      alone["decoder_input_tokens"][:1])["params"]
  logits_alone = model.apply({"params": params}, alone["encoder_input_tokens"], alone["decoder_input_tokens"])
  logits_packed = model.apply({"params": params}, packed["encoder_input_tokens"], packed["decoder_input_tokens"],
                              encoder_segment_ids=packed["encoder_segment_ids"],
                              decoder_segment_ids=packed["decoder_segment_ids"])
  by_target = {tuple(t[t != 0]): k for k, t in enumerate(alone["decoder_target_tokens"])}
  checked = 0
  for r in range(len(packed["encoder_input_tokens"])):
    for seg in set(packed["decoder_segment_ids"][r]) - {0}:
      where = packed["decoder_segment_ids"][r] == seg
      k = by_target[tuple(packed["decoder_target_tokens"][r][where])]
      n = int(where.sum())
      np.testing.assert_allclose(np.asarray(logits_packed[r][where]), np.asarray(logits_alone[k][:n]), atol=2e-4)
      checked += 1
  assert checked == 10
