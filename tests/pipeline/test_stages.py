"""The resumable stage runner: finished stages are skipped (their commands are not run again), a changed
configuration is refused without deleting anything, a failure names the stage and its log and starts nothing
that depends on it, shared files are copied in, and independent stages run side by side."""

import json
import os
import sys

import pytest

from mtpo_jax.pipeline import stages as st


def py(code: str) -> tuple[str, ...]:
  return (sys.executable, "-c", code)


def count_runs(path: str) -> str:
  """A command that appends one line to `path` each time it runs."""
  return f"open({path!r}, 'a').write('run\\n')"


def test_finished_stages_are_skipped_on_rerun(tmp_path):
  log = str(tmp_path / "runs.txt")
  graph = [st.Stage("a", command=py(count_runs(log))), st.Stage("b", ("a",), command=py(count_runs(log)))]
  st.Runner(str(tmp_path / "run"), echo=lambda s: None).run(graph)
  assert open(log).read().count("run") == 2
  marker = json.load(open(tmp_path / "run" / "b" / st.MARKER))
  assert marker["stage"] == "b" and marker["fingerprint"] == {"command": list(graph[1].command[1:])}
  runner = st.Runner(str(tmp_path / "run"), echo=lambda s: None)
  runner.run(graph)
  assert open(log).read().count("run") == 2, "a finished stage ran again"
  assert runner.skipped == ["a", "b"]


def test_changed_configuration_is_refused_and_nothing_is_deleted(tmp_path):
  run = str(tmp_path / "run")
  st.Runner(run, echo=lambda s: None).run([st.Stage("a", command=py("print(1)"))])
  before = open(os.path.join(run, "a", st.MARKER)).read()
  with pytest.raises(st.StageConfigError, match=r"stage 'a' .* another configuration") as e:
    st.Runner(run, echo=lambda s: None).run([st.Stage("a", command=py("print(2)"))])
  assert "print(1)" in str(e.value) and "print(2)" in str(e.value)
  assert open(os.path.join(run, "a", st.MARKER)).read() == before


def test_a_failure_names_the_stage_and_its_log_and_blocks_dependents(tmp_path):
  log = str(tmp_path / "runs.txt")
  graph = [st.Stage("ok", command=py(count_runs(log))),
           st.Stage("bad", command=py("import sys; print('the model diverged'); sys.exit(3)")),
           st.Stage("after", ("bad",), command=py(count_runs(log)))]
  with pytest.raises(st.StageFailed, match=r"stage 'bad' exited with status 3") as e:
    st.Runner(str(tmp_path / "run"), max_parallel=1, echo=lambda s: None).run(graph)
  assert "the model diverged" in str(e.value) and "stage.log" in str(e.value)
  assert open(log).read().count("run") == 1  # 'ok' ran, 'after' never started
  assert os.path.exists(tmp_path / "run" / "ok" / st.MARKER)
  assert not os.path.exists(tmp_path / "run" / "bad" / st.MARKER)
  assert not os.path.exists(tmp_path / "run" / "after")


def test_actions_copy_in_and_parallel_stages(tmp_path):
  run = str(tmp_path / "run")
  shared = str(tmp_path / "run" / "a" / "pairs.jsonl")

  def write_pairs(out_dir):
    with open(os.path.join(out_dir, "pairs.jsonl"), "w") as f:
      f.write("cached\n")
    return {"pairs": 1}

  # b and c each wait until the other has started: they can only both finish if they run side by side
  wait = ("import os, sys, time\nopen(os.path.join({d!r}, 'started_' + {me!r}), 'w').close()\n"
          "t = time.time()\nwhile not os.path.exists(os.path.join({d!r}, 'started_' + {other!r})):\n"
          "  time.sleep(0.05)\n  if time.time() - t > 60: sys.exit(1)\n")
  graph = [st.Stage("a", action=write_pairs, params={"n": 1}),
           st.Stage("b", ("a",), command=py(wait.format(d=str(tmp_path), me="b", other="c")),
                    copy_in=((shared, os.path.join(run, "b", "pairs.jsonl")),)),
           st.Stage("c", ("a",), command=py(wait.format(d=str(tmp_path), me="c", other="b")))]
  runner = st.Runner(run, max_parallel=2, poll_seconds=0.05, echo=lambda s: None)
  runner.run(graph)
  assert open(os.path.join(run, "b", "pairs.jsonl")).read() == "cached\n"
  assert json.load(open(os.path.join(run, "a", st.MARKER)))["summary"] == {"pairs": 1}
  assert set(runner.timings) == {"a", "b", "c"}


def test_graph_errors():
  with pytest.raises(ValueError, match="listed after it"):
    st.check_graph([st.Stage("b", ("a",), command=py("")), st.Stage("a", command=py(""))])
  with pytest.raises(ValueError, match="appears twice"):
    st.check_graph([st.Stage("a", command=py("")), st.Stage("a", command=py(""))])
  with pytest.raises(ValueError, match="exactly one of command and action"):
    st.Stage("a")
