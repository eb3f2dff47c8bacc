"""Malformed inputs through the real command lines (mtpo-train, mtpo-data, mtpo-inspect, mtpo-evaluate).

Each case must end with status 1 (2 for a usage error) and exactly one error line on stderr naming the input,
setting or file (a list error, e.g. the problems of a data file or the changed bindings of a refused rerun, keeps
its detail lines below that line), with no "Traceback" unless --verbose; and every file already under the
workspace (a finished SFT run, data files, checkpoints) must be byte-identical afterwards, with nothing added.

The commands run in-process (`main.cli` and friends are what the console scripts call, with the same argv); a
few run as real subprocesses too, so the whole path from `python -m` to the process's stderr is checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from typing import Callable

import pytest

from mtpo_jax import data_cli, inspect_cli, main
from mtpo_jax.envs.education import generator
from mtpo_jax.evaluation import evaluate

SFT_ARGS = ["--gin_file=experiments/sft_education_tiny.gin", "--gin_file=meshes/cpu.gin",
            "--gin.LoopSettings.num_steps=2", "--gin.LoopSettings.batch_size=8", "--gin.LoopSettings.save_every=2",
            "--gin.education_sft_task.num_train=8", "--gin.education_sft_task.num_eval=4",
            "--gin.train_sft.eval_batches=1", "--gin.train_sft.num_samples=1",
            "--gin.train_sft.task_feature_lengths={'inputs': 64, 'targets': 16}",
            "--gin.education_sft_task.max_input_tokens=63"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> str:
  """The workspace: a finished tiny SFT run, a corrupt copy of it, data directories with one fault each, a
  garbage vocabulary file, and a file where a directory is expected."""
  root = str(tmp_path_factory.mktemp("malformed"))
  sft = os.path.join(root, "sft")
  assert main.cli(SFT_ARGS + [f"--gin.MODEL_DIR='{sft}'"]) == 0
  corrupt = os.path.join(root, "sft_corrupt")
  shutil.copytree(sft, corrupt)
  with open(os.path.join(corrupt, "config.gin")) as f:  # the copy is its own run directory
    text = f.read().replace(f"MODEL_DIR = '{sft}'", f"MODEL_DIR = '{corrupt}'")
  with open(os.path.join(corrupt, "config.gin"), "w") as f:
    f.write(text)
  state = os.path.join(corrupt, "checkpoints", "2", "state")
  largest = max((os.path.join(d, f) for d, _, fs in os.walk(state) for f in fs), key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.seek(os.path.getsize(largest) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0x01]))
  records = generator.generate(6, seed=0)
  faults = {
      "malformed_json": "[{\"background_info\": ",
      "missing_field": json.dumps([{k: v for k, v in records[0].items() if k != "conversation"}] + records[1:]),
      "empty_conversation": json.dumps([{**records[0], "conversation": []}] + records[1:]),
      "overlong_conversation": json.dumps([{**records[0], "conversation": records[0]["conversation"] * 30}]
                                          + records[1:]),
      "overlong_turn": json.dumps([{**records[0], "conversation": [
          {**records[0]["conversation"][0], "text": "word " * 1000}] + records[0]["conversation"][1:]}]
          + records[1:]),
  }
  for name, text in faults.items():
    os.makedirs(os.path.join(root, "data", name))
    with open(os.path.join(root, "data", name, "conversations_train.json"), "w") as f:
      f.write(text)
    with open(os.path.join(root, "data", name, "conversations_eval.json"), "w") as f:
      f.write(json.dumps(records))
  os.makedirs(os.path.join(root, "data", "empty_dir"))
  with open(os.path.join(root, "garbage.model"), "wb") as f:
    f.write(b"this is not a SentencePiece model\n" * 4)
  with open(os.path.join(root, "a_file"), "w") as f:
    f.write("not a directory\n")
  os.makedirs(os.path.join(root, "no_checkpoints"))
  shutil.copy(os.path.join(sft, "config.gin"), os.path.join(root, "no_checkpoints", "config.gin"))
  return root


def _snapshot(root: str) -> dict[str, str]:
  out = {}
  for d, dirs, files in os.walk(root):
    for name in dirs + files:
      path = os.path.join(d, name)
      rel = os.path.relpath(path, root)
      if os.path.isfile(path):
        with open(path, "rb") as f:
          out[rel] = hashlib.sha256(f.read()).hexdigest()
      else:
        out[rel] = "dir"
  return out


class _NotJSON(http.server.BaseHTTPRequestHandler):
  def do_POST(self):  # noqa: N802 (the stdlib's name)
    self.rfile.read(int(self.headers.get("Content-Length", 0)))
    body = b"<html>upstream proxy error</html>"
    self.send_response(200)
    self.send_header("Content-Type", "text/html")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture(scope="module")
def not_json_server():
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotJSON)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  yield f"http://127.0.0.1:{server.server_address[1]}/v1"
  server.shutdown()


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  command: str  # train | data | inspect | evaluate
  argv: Callable[[str, str], list[str]]  # (workspace, endpoint url) -> argv
  expect: Callable[[str], list[str]]  # workspace -> substrings the error line must contain
  status: int = 1


def _train(*extra: str, base: tuple[str, ...] = tuple(SFT_ARGS), model_dir: str = "new_run"):
  return lambda ws, url: [*base, *[e.format(ws=ws, url=url) for e in extra], f"--gin.MODEL_DIR='{ws}/{model_dir}'"]


RL = ("--gin_file=experiments/mtpo_tiny.gin", "--gin_file=meshes/cpu.gin", "--gin.LoopSettings.num_steps=1",
      "--gin.LoopSettings.batch_size=2", "--gin.ConversationSettings.max_agent_turns=2")
INIT = "--gin.SFT_CHECKPOINT='{ws}/sft/checkpoints'"
SCORER = ("--gin_file=experiments/reward_model_tiny.gin", "--gin_file=meshes/cpu.gin",
          "--gin.LoopSettings.num_steps=1", "--gin.PairData.num_train=4", "--gin.PairData.num_eval=2")
ENDPOINT = ("--gin.PairData.judge=@endpoint_judge()", "--gin.endpoint_judge.chat=@ChatConfig()",
            "--gin.ChatConfig.model='judge'", "--gin.ChatConfig.max_retries=0")
DATA = "--gin.education_sft_task.data_dir='{ws}/data/%s'"
const = lambda *parts: (lambda ws: list(parts))

CASES = [
    # Gin: files, names, types, ranges
    Case("gin_file_missing", "train", lambda ws, url: ["--gin_file=nope/missing.gin", f"--gin.MODEL_DIR='{ws}/x'"],
         const("FileNotFoundError", "nope/missing.gin")),
    Case("gin_unknown_configurable", "train", _train("--gin.T5Confg.d_model=32"), const("T5Confg")),
    Case("gin_unknown_parameter", "train", _train("--gin.LoopSettings.num_stepz=3"), const("num_stepz")),
    Case("gin_syntax_error", "train", _train("--gin.LoopSettings.num_steps = = 3"),
         const("SyntaxError", "LoopSettings.num_steps = = 3")),
    Case("gin_str_for_int", "train", _train("--gin.LoopSettings.num_steps='ten'"),
         const("LoopSettings.num_steps = 'ten'", "expected int")),
    Case("gin_float_for_int", "train", _train("--gin.T5Config.d_model=6.5"), const("T5Config.d_model = 6.5")),
    Case("gin_str_for_bool", "train", _train("--gin.LoopSettings.restore_earlier_if_corrupt='yes'"),
         const("restore_earlier_if_corrupt", "expected bool")),
    Case("gin_steps_out_of_range", "train", _train("--gin.LoopSettings.num_steps=0"),
         const("LoopSettings.num_steps must be >= 1")),
    Case("gin_batch_out_of_range", "train", _train("--gin.LoopSettings.batch_size=-4"), const("batch_size")),
    Case("batch_not_divisible_by_mesh", "train", _train("--gin.LoopSettings.batch_size=4"),
         const("LoopSettings.batch_size = 4", "multiple of 8")),
    Case("gin_mesh_does_not_divide", "train", _train("--gin.MeshSpec.data=3"), const("devices", "MeshSpec")),
    Case("gin_feed_forward_unknown", "train", _train("--gin.T5Config.feed_forward='swish'"),
         const("feed_forward", "swish")),
    Case("gin_vocabulary_too_big_for_model", "train", _train("--gin.T5Config.vocab_size=1000"),
         const("vocab", "1000")),
    Case("rerun_with_changed_config", "train", _train("--gin.LoopSettings.num_steps=3", model_dir="sft"),
         const("ConfigChangedError", "sft/config.gin", "--allow_config_change")),
    Case("rl_unknown_algorithm", "train", _train(INIT, "--gin.train_rl.algorithm='ppo2'", base=RL),
         const("ppo2")),
    Case("rl_conversation_turns_out_of_range", "train",
         _train(INIT, "--gin.ConversationSettings.max_agent_turns=0", base=RL), const("max_agent_turns")),
    Case("rl_unknown_environment", "train", _train(INIT, "--gin.ConversationSettings.env_name='chess'", base=RL),
         const("chess")),
    # checkpoints
    Case("init_checkpoint_missing", "train", _train("--gin.SFT_CHECKPOINT='{ws}/nowhere/checkpoints'", base=RL),
         lambda ws: [f"{ws}/nowhere/checkpoints"]),
    Case("init_checkpoint_other_vocabulary", "train", _train(INIT, "--gin.T5Config.vocab_size=4096", base=RL),
         const("init_checkpoint", "4096")),
    Case("init_checkpoint_other_shape", "train", _train(INIT, "--gin.T5Config.d_ff=96", base=RL),
         const("init_checkpoint")),
    Case("init_checkpoint_corrupt", "train", _train("--gin.SFT_CHECKPOINT='{ws}/sft_corrupt/checkpoints'", base=RL),
         lambda ws: [f"{ws}/sft_corrupt/checkpoints/2"]),
    Case("resume_corrupt_checkpoint", "train", _train(model_dir="sft_corrupt"),
         lambda ws: [f"{ws}/sft_corrupt/checkpoints/2", "restore_earlier_if_corrupt"]),
    # the vocabulary file
    Case("vocabulary_missing", "train", _train(INIT, "--gin.ConversationSettings.vocab_path='{ws}/none.model'",
                                               base=RL), lambda ws: [f"{ws}/none.model"]),
    Case("vocabulary_garbage", "train", _train("--gin.education_sft_task.vocab_path='{ws}/garbage.model'"),
         lambda ws: [f"{ws}/garbage.model is not a readable SentencePiece model"]),
    # data
    Case("data_malformed_json", "train", _train(DATA % "malformed_json"),
         lambda ws: [f"{ws}/data/malformed_json/conversations_train.json"]),
    Case("data_missing_field", "train", _train(DATA % "missing_field"), const("DataError", "conversation")),
    Case("data_empty_conversation", "train", _train(DATA % "empty_conversation"), const("DataError", "conversation")),
    Case("data_overlong_conversation", "train", _train(DATA % "overlong_conversation"),
         const("DataError", "conversation")),
    Case("data_overlong_turn", "train", _train(DATA % "overlong_turn"), const("DataError", "text")),
    Case("data_directory_empty", "train", _train(DATA % "empty_dir"), lambda ws: [f"{ws}/data/empty_dir"]),
    Case("data_directory_is_a_file", "train", _train("--gin.education_sft_task.data_dir='{ws}/a_file'"),
         lambda ws: [f"{ws}/a_file"]),
    # the endpoint's replies
    Case("endpoint_not_json", "train", lambda ws, url: _train(*ENDPOINT, f"--gin.ChatConfig.base_url='{url}'",
                                                              base=SCORER)(ws, url),
         const("MalformedReplyError", "upstream proxy error")),
    Case("endpoint_refuses_connection", "train",
         _train(*ENDPOINT, "--gin.ChatConfig.base_url='http://127.0.0.1:9/v1'", "--gin.ChatConfig.timeout_s=2.0",
                base=SCORER), const("127.0.0.1:9")),
    Case("endpoint_bad_url", "train", _train(*ENDPOINT, "--gin.ChatConfig.base_url='ftp://judge'", base=SCORER),
         const("base_url", "ftp://judge")),
    # mtpo-data
    Case("data_cli_validate_malformed", "data", lambda ws, url: ["validate", f"{ws}/data/malformed_json/"
                                                                 "conversations_train.json"],
         lambda ws: [f"{ws}/data/malformed_json/conversations_train.json"]),
    Case("data_cli_generate_into_a_file", "data", lambda ws, url: ["generate", "--out", f"{ws}/a_file",
                                                                   "--num_train", "4", "--num_train_files", "1",
                                                                   "--num_eval", "2"],
         lambda ws: [f"{ws}/a_file"]),
    Case("data_cli_generate_zero", "data", lambda ws, url: ["generate", "--out", f"{ws}/gen", "--num_train", "0"],
         const("num_train")),
    # mtpo-inspect
    Case("inspect_unknown_task", "inspect", lambda ws, url: ["education_dialogue_synthetic_small_teacher_sf"],
         const("unknown task"), status=2),
    # mtpo-evaluate
    Case("evaluate_missing_run", "evaluate", lambda ws, url: ["--run", f"a={ws}/nowhere", "--run", f"b={ws}/sft",
                                                             "--out", f"{ws}/eval"], lambda ws: [f"{ws}/nowhere"]),
    Case("evaluate_run_without_checkpoints", "evaluate",
         lambda ws, url: ["--run", f"a={ws}/no_checkpoints", "--run", f"b={ws}/sft", "--out", f"{ws}/eval"],
         lambda ws: [f"{ws}/no_checkpoints"]),
    Case("evaluate_bad_scripted_teacher", "evaluate",
         lambda ws, url: ["--run", "a=scripted:telepathy:never", "--run", f"b={ws}/sft", "--out", f"{ws}/eval"],
         const("telepathy")),
    Case("evaluate_corrupt_checkpoint", "evaluate",
         lambda ws, url: ["--run", f"a={ws}/sft_corrupt", "--run", f"b={ws}/sft", "--out", f"{ws}/eval"],
         lambda ws: [f"{ws}/sft_corrupt/checkpoints/2"]),
    Case("evaluate_garbage_vocabulary", "evaluate",
         lambda ws, url: ["--run", f"a={ws}/sft", "--run", "b=scripted:hands_on:might_adapt", "--vocab",
                          f"{ws}/garbage.model", "--out", f"{ws}/eval", "--num_contexts", "2"],
         lambda ws: [f"{ws}/garbage.model"]),
]
COMMANDS = {"train": (main.cli, "mtpo-train", "mtpo_jax.main"), "data": (data_cli.main, "mtpo-data", "mtpo_jax.data_cli"),
            "inspect": (inspect_cli.main, "mtpo-inspect", "mtpo_jax.inspect_cli"),
            "evaluate": (evaluate.main, "mtpo-evaluate", "mtpo_jax.evaluation.evaluate")}


def test_there_are_at_least_30_cases():
  assert len(CASES) >= 30 and len({c.name for c in CASES}) == len(CASES)


def _check(case: Case, ws: str, status: int, err: str) -> None:
  assert status == case.status, (case.name, status, err[-2000:])
  assert "Traceback" not in err, err[-3000:]
  prog = COMMANDS[case.command][1]
  error_lines = [line for line in err.splitlines() if line.startswith(f"{prog}: ") or line.startswith("FAILED")
                 or line.startswith(f"{prog} ")]
  assert len(error_lines) == 1, (case.name, err[-3000:])
  for want in case.expect(ws):
    assert want in err, (case.name, want, err[-3000:])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_gives_one_line_and_changes_nothing(case, ws, not_json_server, capfd, monkeypatch):
  monkeypatch.delenv("MTPO_VERBOSE", raising=False)
  before = _snapshot(ws)
  fn = COMMANDS[case.command][0]
  try:
    status = fn(case.argv(ws, not_json_server))
  except SystemExit as e:  # argparse usage errors
    status = e.code
  out, err = capfd.readouterr()
  _check(case, ws, status, err + out if case.command in ("data", "inspect") else err)
  assert _snapshot(ws) == before, case.name


SUBPROCESS = ["gin_str_for_int", "rerun_with_changed_config", "data_malformed_json", "evaluate_missing_run"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_real_process_stderr_has_one_line_and_verbose_has_the_traceback(name, ws, not_json_server, repo_root):
  case = next(c for c in CASES if c.name == name)
  argv = [sys.executable, "-m", COMMANDS[case.command][2], *case.argv(ws, not_json_server)]
  env = {k: v for k, v in os.environ.items() if k != "MTPO_VERBOSE"}
  before = _snapshot(ws)
  proc = subprocess.run(argv, cwd=repo_root, capture_output=True, text=True, timeout=300, env=env)
  _check(case, ws, proc.returncode, proc.stderr)
  verbose = subprocess.run(argv, cwd=repo_root, capture_output=True, text=True, timeout=300,
                           env={**env, "MTPO_VERBOSE": "1"})
  assert verbose.returncode == case.status and "Traceback" in verbose.stderr, verbose.stderr[-2000:]
  assert _snapshot(ws) == before
