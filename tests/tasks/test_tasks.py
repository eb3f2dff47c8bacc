"""SeqIO tasks and the TFDS builder: released-format files round-trip, bad files write nothing, inputs respect
their budgets and never leak the student's hidden preference to the teacher."""

import json
import os

import pytest

seqio = pytest.importorskip("seqio")
tfds = pytest.importorskip("tensorflow_datasets")

from mtpo_jax.testing import project_vocabulary
from mtpo_tasks import negotiation
from mtpo_jax.envs.education import generator  # noqa: E402
from mtpo_jax.envs.education.convert import record_id  # noqa: E402


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("tfds"))
  os.environ["MTPO_TFDS_DIR"] = d
  return d


@pytest.fixture(scope="module")
def released_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("released"))
  generator.write_dataset(d, seed=7, num_train=60, num_train_files=5, num_eval=20)
  return d


def test_released_config_round_trips(tfds_dir, released_dir):
  from mtpo_tasks.education_dialogue_tfds import load_records
  train = load_records("released", "train", data_dir=tfds_dir, manual_dir=released_dir)
  original = []
  for i in range(5):
    with open(os.path.join(released_dir, f"conversations_train{i + 1}.json")) as f:
      original += json.load(f)
  assert len(train) == 60
  by_id = {record_id(r): r for r in original}
  for r in train:
    assert r == by_id[record_id(r)]


def test_malformed_release_writes_nothing(tmp_path, released_dir):
  from mtpo_tasks.education_dialogue_tfds import EducationDialogue
  bad = tmp_path / "bad"
  bad.mkdir()
  for name in os.listdir(released_dir):
    (bad / name).write_text(open(os.path.join(released_dir, name)).read())
  records = json.loads((bad / "conversations_train2.json").read_text())
  records[3]["background_info"]["student_preferences"] = records[3]["background_info"].pop("student_prefrences")
  records[5]["conversation"] = []
  (bad / "conversations_train2.json").write_text(json.dumps(records))
  data_dir = str(tmp_path / "tfds")
  builder = EducationDialogue(config="released", data_dir=data_dir)
  with pytest.raises(Exception, match="student_prefrences"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(bad)))
  assert not builder.is_prepared()
  skipping = EducationDialogue(config="released_skip_bad", data_dir=data_dir)
  skipping.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(bad)))
  assert skipping.info.splits["train"].num_examples == 58


def test_teacher_sft_task_end_to_end(tfds_dir):
  import mtpo_tasks.registry  # noqa: F401
  from mtpo_tasks import education_dialogue as ed
  task = seqio.get_mixture_or_task(ed.task_name("synthetic_small", "teacher_sft"))
  ds = task.get_dataset({"inputs": 512, "targets": 128}, split="validation", shuffle=False)
  vocab = project_vocabulary()
  python = list(ed.examples("synthetic_small", "teacher_sft", "validation"))
  records = {record_id(r): r for r in ed._records("synthetic_small", "validation")}
  n = 0
  for ex, py in zip(ds.as_numpy_iterator(), python):
    assert len(ex["inputs"]) <= 512 and ex["inputs"][-1] == 1  # EOS kept: nothing was cut by trimming
    assert vocab.decode(ex["inputs"]) == vocab.decode(vocab.encode(py["inputs"]))
    assert vocab.decode(ex["targets"]) == vocab.decode(vocab.encode(py["targets"]))
    bg = records[py["id"].split(":")[0]]["background_info"]
    assert bg["student_prefrences"] not in py["inputs"]  # the teacher never sees the hidden preference
    if py["truncated"]:
      assert "[earlier turns omitted]" in py["inputs"]
    n += 1
  assert n == len(python) > 500


def test_every_task_yields_examples(tfds_dir):
  from mtpo_tasks import registry
  names = [t for t in seqio.TaskRegistry.names() if "synthetic_small" in t
           or t.startswith("negotiation_") and "generated" not in t and "files" not in t]
  assert len(names) == 9
  for name in names:
    first = next(iter(registry.python_examples(name, "validation")))
    assert first["inputs"] and first["targets"], name
  pairs = list(registry.python_examples("education_dialogue_synthetic_small_conversation_pairs", "validation"))
  probs = [float(p["targets"]) for p in pairs]
  assert min(probs) < 0.2 and max(probs) > 0.8  # the judge separates the pairs


def test_inspect_cli(tfds_dir, capsys):
  from mtpo_jax import inspect_cli
  assert inspect_cli.main(["education_dialogue_synthetic_small_teacher_sft", "-n", "2"]) == 0
  out = capsys.readouterr().out
  assert out.count("--- inputs (") == 2 and "Teacher:" in out
  assert inspect_cli.main(["negotiation_seller_sft", "--stats", "--json"]) == 0
  stats = json.loads(capsys.readouterr().out)
  assert stats["examples"] > 100 and stats["input_tokens"]["max"] <= 512
  assert inspect_cli.main(["education_dialogue_synthetic_small_teacher_sf"]) == 2


def test_inspect_shows_the_tokens_the_trainer_reads(tfds_dir, capsys):
  """--batch rows are the trainer's batch, token for token; the default view counts what the length cut."""
  from mtpo_jax import inspect_cli
  from mtpo_jax.data.task_data import TaskBatches, TaskFeed
  task = "negotiation_seller_sft"
  assert inspect_cli.main([task, "--split", "train", "--batch", "3", "--batch_size", "4", "--seed", "2",
                           "--inputs_length", "24", "--targets_length", "8", "--ids", "--json", "-n", "4"]) == 0
  rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  batch = TaskBatches(TaskFeed(task, {"inputs": 24, "targets": 8}, "train"), 4, seed=2).batch(3)
  for row, ids, targets in zip(rows, batch["encoder_input_tokens"], batch["decoder_target_tokens"]):
    assert row["inputs_ids"] == [int(i) for i in ids if i] and row["targets_ids"] == [int(i) for i in targets if i]
  assert len(rows) == 4
  assert inspect_cli.main([task, "--split", "train", "--inputs_length", "24", "--json", "-n", "2"]) == 0
  shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  count = lambda text: len(project_vocabulary().encode(text))
  python = list(negotiation.examples("seller_sft", "train", 511, count))[:2]
  for row, py in zip(shown, python):
    full = len(project_vocabulary().encode(py["inputs"])) + 1  # with EOS
    assert row["inputs_tokens"] == 24 and row["inputs_cut"] == full - 24
