"""Training from registered SeqIO names through the entrypoint: the project's mixture at its rates, and the
released-format files through the `released` task (a malformed file stops the run with the validator's line)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("seqio")

from mtpo_jax import main  # noqa: E402
from mtpo_jax.envs.education import generator  # noqa: E402

TINY = ["--gin_file=meshes/cpu.gin", "--gin.LoopSettings.num_steps=3", "--gin.LoopSettings.batch_size=8",
        "--gin.LoopSettings.log_every=1", "--gin.LoopSettings.eval_every=3", "--gin.LoopSettings.save_every=3",
        "--gin.train_sft.eval_batches=1", "--gin.train_sft.num_samples=0",
        "--gin.train_sft.task_feature_lengths={'inputs': 96, 'targets': 24}"]


@pytest.fixture
def tfds_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("MTPO_TFDS_DIR", str(tmp_path / "tfds"))
  return str(tmp_path / "tfds")


def _losses(model_dir: str) -> list[float]:
  return [m["train/loss"] for m in map(json.loads, open(os.path.join(model_dir, "metrics.jsonl")))
          if "train/loss" in m]


def test_the_mixture_trains_through_gin_at_its_rates(tmp_path, tfds_dir):
  from mtpo_jax.data.task_data import TaskBatches, TaskFeed
  from mtpo_jax.testing import project_vocabulary
  from mtpo_tasks import registry
  run = str(tmp_path / "mixture")
  assert main.cli(["--gin_file=experiments/sft_mixture_tiny.gin", f"--gin.MODEL_DIR='{run}'", *TINY]) == 0
  assert len(_losses(run)) == 3 and np.isfinite(_losses(run)).all()
  # The batches it trained on: 6 teacher rows and 2 seller rows (inputs are cut on the left, so the speaker
  # prompt at the end names the task).
  batches = TaskBatches(TaskFeed(registry.SFT_MIXTURE, {"inputs": 96, "targets": 24}), 8, seed=0)
  vocab = project_vocabulary()
  for i in range(3):
    prompts = [vocab.decode(list(row)).split()[-1] for row in batches.batch(i)["encoder_input_tokens"]]
    assert prompts.count("Teacher:") == 6 and prompts.count("Seller:") == 2, prompts


def test_released_files_train_through_the_released_task(tmp_path, tfds_dir, monkeypatch, capsys):
  released = tmp_path / "released"
  generator.write_dataset(str(released), seed=3, num_train=40, num_train_files=5, num_eval=16)
  monkeypatch.setenv("MTPO_EDUCATION_DIALOGUE_DIR", str(released))
  task = "--gin.train_sft.mixture_or_task_name='education_dialogue_released_teacher_sft'"
  run = str(tmp_path / "released_sft")
  assert main.cli(["--gin_file=experiments/sft_education_tiny.gin", f"--gin.MODEL_DIR='{run}'", task, *TINY]) == 0
  assert len(_losses(run)) == 3

  bad = tmp_path / "bad"
  bad.mkdir()
  for name in os.listdir(released):
    (bad / name).write_text((released / name).read_text())
  records = json.loads((bad / "conversations_train3.json").read_text())
  records[2]["conversation"] = []
  (bad / "conversations_train3.json").write_text(json.dumps(records))
  monkeypatch.setenv("MTPO_EDUCATION_DIALOGUE_DIR", str(bad))
  monkeypatch.setenv("MTPO_TFDS_DIR", str(tmp_path / "tfds_bad"))
  from mtpo_tasks import education_dialogue
  education_dialogue._records.cache_clear()
  capsys.readouterr()
  run = str(tmp_path / "bad_sft")
  assert main.cli(["--gin_file=experiments/sft_education_tiny.gin", f"--gin.MODEL_DIR='{run}'", task, *TINY]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert "conversations_train3.json" in err[0] and "Traceback" not in "\n".join(err), err
  assert not os.path.exists(run)  # nothing was written
