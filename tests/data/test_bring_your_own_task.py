"""docs/data.md "Bring your own task", run as written: the module block is written to a file, the data are made
in its format, the training command trains a policy on the task (and its loss falls), and the inspection
command shows the task's rows."""

import json
import os
import re
import shlex
import sys

import pytest

pytest.importorskip("seqio")

from mtpo_jax import inspect_cli, main  # noqa: E402
from mtpo_jax.data import toy_teacher  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "data.md")


def _block(tag: str) -> str:
  """The fenced block of docs/data.md whose info string is `tag` (e.g. "python my_dialogue_tasks.py")."""
  found = re.findall(r"```" + re.escape(tag) + r"\n(.*?)```", open(DOC).read(), re.S)
  assert len(found) == 1, f"docs/data.md has {len(found)} blocks tagged {tag!r}"
  return found[0]


def _command(tag: str) -> tuple[dict[str, str], list[str]]:
  """(environment assignments, argv after the program name) of a shell block."""
  words = shlex.split(_block(tag).replace("\\\n", " "))
  env = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
  rest = [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]
  if rest[:3] == ["python", "-m", "mtpo_jax.main"]:
    return env, rest[3:]
  assert rest[0] == "mtpo-inspect", rest
  return env, rest[1:]


def test_the_documented_steps_train_a_policy_on_a_users_task(tmp_path, monkeypatch, capsys):
  # Step 1: data in the documented format (the documented example line first).
  example = json.loads(_block("json"))
  data = tmp_path / "my_data"
  data.mkdir()
  for split, seed, n in (("train", 0, 400), ("validation", 1, 32)):
    rows = [example] + [{"prompt": i, "reply": t} for i, t in toy_teacher.generate(n, seed)]
    (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  # Step 2: the module, exactly as documented.
  (tmp_path / "my_dialogue_tasks.py").write_text(_block("python my_dialogue_tasks.py"))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.chdir(tmp_path)
  sys.modules.pop("my_dialogue_tasks", None)
  # Step 3: the documented command, shortened to a CPU test's length.
  env, argv = _command("bash byo-train")
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  assert main.cli(argv + ["--gin.LoopSettings.num_steps=40", "--gin.LoopSettings.batch_size=16",
                          "--gin.LoopSettings.log_every=5", "--gin.LoopSettings.eval_every=40",
                          "--gin.LoopSettings.save_every=40", "--gin.train_sft.eval_batches=1",
                          "--gin.train_sft.num_samples=1"]) == 0
  logged = [json.loads(line) for line in open(tmp_path / "runs" / "my_sft" / "metrics.jsonl")]
  losses = [m["train/loss"] for m in logged if "train/loss" in m]
  assert len(losses) >= 8 and losses[-1] < 0.7 * losses[0], losses
  assert "my_dialogue_sft" in (tmp_path / "runs" / "my_sft" / "config.gin").read_text()
  # Step 4: the documented inspection shows the user's rows.
  env, argv = _command("bash byo-inspect")
  capsys.readouterr()
  assert inspect_cli.main(argv) == 0
  out = capsys.readouterr().out
  assert out.count("--- inputs (") == 2 and "topic: volcanoes | student: what is a volcano?" in out
