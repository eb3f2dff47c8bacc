"""Several JAX processes on 127.0.0.1 (CPU collectives) against one process with the same global mesh.

Each run goes through tools/launch_local.py and the real entrypoint. With the same global batch, 2 processes x 4
CPU devices must give the losses and parameters of 1 process x 8 devices (up to float summation order: the
reference is the single-process run, an independent execution of the same math), and a checkpoint written by
either layout must resume in the other and continue exactly as an uninterrupted run does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name: str):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


launch_local = _tool("launch_local")
compare = _tool("compare_process_layouts")

SFT = ["--gin_file=experiments/sft_tiny.gin", "--gin_file=meshes/cpu_multiprocess.gin",
       "--gin.toy_teacher_task.num_train=256", "--gin.toy_teacher_task.num_eval=64", "--gin.LoopSettings.log_every=1",
       "--gin.LoopSettings.eval_every=6", "--gin.train_sft.eval_batches=2", "--gin.LoopSettings.save_every=3",
       "--gin.train_sft.num_samples=2", "--gin.train_sft.data_shards=2"]
MTPO = ["--gin_file=experiments/mtpo_tiny.gin", "--gin_file=meshes/cpu_multiprocess.gin",
        "--gin.LoopSettings.batch_size=4", "--gin.ConversationSettings.max_agent_turns=2",
        "--gin.ConversationSettings.input_length=128",
        "--gin.ConversationSettings.max_turn_tokens=24", "--gin.train_rl.eval_contexts=5",
        "--gin.LoopSettings.eval_every=2",
        "--gin.LoopSettings.save_every=1", "--gin.ActorCriticHParams.policy_delay=0",
        "--gin.ActorCriticHParams.microbatch_rows=8"]


def run(model_dir: str, processes: int, devices: int, args: list[str], *extra: str) -> None:
  status = launch_local.launch([*args, *extra, f"--gin.MODEL_DIR='{model_dir}'"], processes, devices,
                               os.path.join(model_dir, "process_logs"), timeout_s=600, echo=False)
  if status:
    logs = sorted(os.listdir(os.path.join(model_dir, "process_logs")))
    tails = {n: launch_local._tail(os.path.join(model_dir, "process_logs", n), 15) for n in logs}
    pytest.fail(f"{processes}-process run exited with {status}: {tails}")


metrics = compare.read_metrics


def assert_same_metrics(a: dict, b: dict, steps=None, rtol=1e-5, atol=1e-5) -> None:
  keys = [k for k in a if steps is None or k[0] in steps]
  assert keys and set(keys) <= set(b), sorted(set(keys) - set(b))[:5]
  bad = {k: (a[k], b[k]) for k in keys if not np.isclose(a[k], b[k], rtol=rtol, atol=atol)}
  assert not bad, bad


def assert_same_state(dir_a: str, dir_b: str, atol=1e-5) -> None:
  worst = compare.max_state_difference(dir_a, dir_b)
  assert worst <= atol, worst


def drop_steps_after(model_dir: str, step: int) -> None:
  """A copy of a finished run cut back to its checkpoint at `step` (as if it had been killed after it)."""
  ckpts = os.path.join(model_dir, "checkpoints")
  for name in os.listdir(ckpts):
    if name.isdigit() and int(name) > step:
      shutil.rmtree(os.path.join(ckpts, name))


def test_sft_two_processes_match_one_and_checkpoints_cross(tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run(one, 1, 8, SFT, "--gin.LoopSettings.num_steps=6")
  run(two, 2, 4, SFT, "--gin.LoopSettings.num_steps=6")
  m1, m2 = metrics(one), metrics(two)
  assert len({s for s, _ in m1}) == 6
  assert_same_metrics(m1, m2)
  assert_same_state(one, two)
  # SeqIO read data shard s (seqio.ShardInfo(s, 2)) in process s only; the single process read both
  logs = {n: open(os.path.join(two, "process_logs", n)).read() for n in os.listdir(os.path.join(two, "process_logs"))}
  for shard in (1, 2):
    readers = [n for n, text in logs.items() if f"toy_teacher_sft/train shard {shard} of 2" in text]
    assert len(readers) == 1, (shard, readers)
  single = "".join(open(os.path.join(one, "process_logs", n)).read() for n in os.listdir(os.path.join(one, "process_logs")))
  assert "train shard 1 of 2" in single and "train shard 2 of 2" in single
  # only process 0 wrote the human-facing files
  with open(os.path.join(two, "samples.txt")) as f:
    assert f.read().count("reference:") == 2
  with open(os.path.join(two, "metrics.jsonl")) as f:
    assert len(f.readlines()) == 6 + 1  # six train records and one eval record, not two of each

  # a 2-process checkpoint resumes in 1 process, and a 1-process one in 2, each continuing the 6-step run
  two_to_one, one_to_two = str(tmp_path / "two_to_one"), str(tmp_path / "one_to_two")
  shutil.copytree(two, two_to_one, ignore=shutil.ignore_patterns("metrics.jsonl", "tensorboard"))
  shutil.copytree(one, one_to_two, ignore=shutil.ignore_patterns("metrics.jsonl", "tensorboard"))
  drop_steps_after(two_to_one, 3)
  drop_steps_after(one_to_two, 3)
  run(two_to_one, 1, 8, SFT, "--gin.LoopSettings.num_steps=6")
  run(one_to_two, 2, 4, SFT, "--gin.LoopSettings.num_steps=6")
  for resumed in (two_to_one, one_to_two):
    m = metrics(resumed)
    assert min(s for s, _ in m) == 4  # it resumed rather than restarted
    assert_same_metrics(m1, m, steps=(4, 5, 6))
    assert_same_state(one, resumed)


def test_mtpo_two_processes_match_one(tmp_path):
  """On the contexts of an rl_contexts task's file (data/task_contexts.py), read without TensorFlow."""
  from mtpo_jax.data import education_examples, task_contexts
  from mtpo_jax.envs.education import generator
  contexts = str(tmp_path / "contexts.jsonl")
  task_contexts.write_contexts_file(contexts, [task_contexts.context_from_json(education_examples.rl_context(r)["context"])
                                               for r in generator.generate(6, seed=5, split="train")])
  source = ["--gin.train_rl.contexts=@ContextSource()", f"--gin.ContextSource.file='{contexts}'"]
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run(one, 1, 8, MTPO, "--gin.LoopSettings.num_steps=2", *source)
  run(two, 2, 4, MTPO, "--gin.LoopSettings.num_steps=2", *source)
  m1, m2 = metrics(one), metrics(two)
  # the update ran on the gathered batch (4 contexts x 2 conversations, 2 from each process), and evaluation
  # covered all 5 held-out contexts (2 + 3)
  assert m1[(2, "train/policy_active")] == 1.0
  assert (2, "train/win_rate_vs_reference") in m2
  assert_same_metrics(m1, m2)
  assert_same_state(one, two)


@pytest.mark.slow
def test_mtpo_on_an_every_axis_mesh_resumes_across_process_counts(tmp_path):
  """data x fsdp x model = 2 x 2 x 2 over 2 processes (parameters sharded across processes), 4 iterations,
  killed after 2 and resumed in 1 process; against an uninterrupted 1-process run."""
  args = [*MTPO, "--gin_file=meshes/cpu_fake8.gin", "--gin.run.distributed=True",
          "--gin.LoopSettings.num_steps=4", "--gin.LoopSettings.eval_every=4"]
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run(one, 1, 8, args)
  run(two, 2, 4, args)
  assert_same_metrics(metrics(one), metrics(two))
  assert_same_state(one, two)
  resumed = str(tmp_path / "resumed")
  shutil.copytree(two, resumed, ignore=shutil.ignore_patterns("metrics.jsonl", "tensorboard"))
  drop_steps_after(resumed, 2)
  run(resumed, 1, 8, args)
  assert_same_metrics(metrics(one), metrics(resumed), steps=(3, 4))
  assert_same_state(one, resumed)


OTHER_TRAINERS = {
    "reward_model": ["--gin_file=experiments/reward_model_tiny.gin", "--gin.LoopSettings.num_steps=10",
                     "--gin.PairData.num_train=200", "--gin.PairData.num_eval=64",
                     "--gin.LoopSettings.log_every=5", "--gin.LoopSettings.eval_every=10",
                     "--gin.LoopSettings.save_every=10", "--gin.train_scorer.data_shards=2"],
    "iterative_ppo": ["--gin_file=experiments/iterative_ppo_tiny.gin"],
}


@pytest.mark.slow
@pytest.mark.parametrize("trainer", sorted(OTHER_TRAINERS))
def test_other_trainers_two_processes_match_one(tmp_path, trainer):
  """The scorer trainer (per-process pair rows) and Iterative PPO (replicated collection, global Q and PPO
  steps) under 2 x 4 against 1 x 8."""
  args = [*OTHER_TRAINERS[trainer], "--gin_file=meshes/cpu_multiprocess.gin"]
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  run(one, 1, 8, args)
  run(two, 2, 4, args)
  assert_same_metrics(metrics(one), metrics(two))
  assert_same_state(one, two)


def test_a_failing_process_stops_the_launch_with_its_log(tmp_path, capsys):
  status = launch_local.launch(["--gin_file=experiments/sft_tiny.gin", "--gin.train_sft.no_such_setting=1",
                                f"--gin.MODEL_DIR='{tmp_path}'"], 2, 1, str(tmp_path / "logs"), timeout_s=300,
                               echo=False)
  assert status != 0
  err = capsys.readouterr().err
  assert "exited with status" in err and "no_such_setting" in err


GATHER_SCRIPT = """
import sys, jax, numpy as np
pid, port = int(sys.argv[1]), sys.argv[2]
jax.config.update("jax_num_cpu_devices", 1)
jax.distributed.initialize("127.0.0.1:" + port, 3, pid)
from mtpo_jax import distributed as d
x = np.array([1 / 3 + 2.0 ** -45, 0.1, 1e300], np.float64)[:pid] + pid  # 0, 1 and 2 rows
print("RESULT", repr((d.gather_rows(x).tolist(), d.gather_rows(np.full((pid, 2), pid, np.int64) * 2 ** 40).tolist(),
                      d.process_offset(pid), [d.process_slice(7).start, d.process_slice(7).stop], d.is_primary())),
      flush=True)
"""


def test_host_gathers_are_exact_ragged_and_in_process_order(tmp_path):
  """Three 1-device processes: float64 and int64 survive the gather bit for bit (JAX alone would make them
  32-bit), blocks of different sizes (including empty) concatenate in process order."""
  import subprocess
  import sys
  script = tmp_path / "gather.py"
  script.write_text(GATHER_SCRIPT)
  port = str(launch_local.free_port())
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  procs = [subprocess.Popen([sys.executable, str(script), str(i), port], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO) for i in range(3)]
  outs = [p.communicate(timeout=120)[0] for p in procs]
  results = [next(line for line in out.splitlines() if line.startswith("RESULT")) for out in outs]
  want_x = [1 + 1 / 3 + 2.0 ** -45, 2 + 1 / 3 + 2.0 ** -45, 2.1]
  for i, line in enumerate(results):
    x, ints, offset, block, primary = eval(line[len("RESULT "):])
    assert x == want_x  # exact equality: 2**-45 is lost in float32
    assert ints == [[2 ** 40, 2 ** 40], [2 ** 41, 2 ** 41], [2 ** 41, 2 ** 41]]
    assert offset == [0, 0, 1][i]
    assert block == [[0, 2], [2, 5], [5, 7]][i]  # 7 items into blocks of 2, 3, 2
    assert primary == (i == 0)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_every_process_at_the_same_step(tmp_path):
  """A scheduler may signal one host first: SIGTERM to process 1 only. Every process must stop at the same
  step (training/loop.py: one process_allgather of the stop flags per step), save it together and exit 75; the
  same command then finishes, logging every step once with an uninterrupted 2-process run's values."""
  import re
  import signal
  import subprocess
  import time
  args = [*SFT, "--gin.LoopSettings.num_steps=40", "--gin.LoopSettings.save_every=1000",
          "--gin.LoopSettings.eval_every=1000", "--gin.train_sft.num_samples=0"]
  straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
  run(straight, 2, 4, args)
  port = launch_local.free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
  env.pop("XLA_FLAGS", None)
  os.makedirs(stopped)
  logs = [open(os.path.join(str(tmp_path), f"process_{i}.log"), "w") for i in range(2)]
  procs = [subprocess.Popen(launch_local.process_command([*args, f"--gin.MODEL_DIR='{stopped}'"], i, 2, 4, port),
                            env=env, stdout=logs[i], stderr=subprocess.STDOUT, cwd=REPO) for i in range(2)]
  metrics_file = os.path.join(stopped, "metrics.jsonl")
  deadline = time.time() + 600
  while not (os.path.exists(metrics_file) and len(open(metrics_file).readlines()) >= 3):
    assert time.time() < deadline and all(p.poll() is None for p in procs), "the run never logged 3 steps"
    time.sleep(0.05)
  procs[1].send_signal(signal.SIGTERM)
  assert [p.wait(timeout=300) for p in procs] == [75, 75]
  texts = [open(os.path.join(str(tmp_path), f"process_{i}.log")).read() for i in range(2)]
  steps = [re.search(r"stopped by (SIGTERM|a signal to another process): saved step (\d+)", t) for t in texts]
  assert all(steps), [t[-2000:] for t in texts]
  assert steps[0].group(2) == steps[1].group(2)  # the same step on both processes
  assert "stopped by SIGTERM" in texts[1] and "stopped by a signal to another process" in texts[0]
  run(stopped, 2, 4, args)
  want, have = metrics(straight), metrics(stopped)
  assert sorted(have) == sorted(want)
  assert_same_metrics(want, have, rtol=0, atol=0)
  assert_same_state(straight, stopped, atol=0)
