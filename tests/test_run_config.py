"""run_config.py: config.gin appears only once the job accepts it; a rerun with other bindings is refused with
the changed bindings."""

import os

import pytest

from mtpo_jax import run_config

OLD = """# Parameters for LoopSettings:
# ==============================================================================
LoopSettings.num_steps = 2
LoopSettings.seed = 0

# Parameters for PairData:
PairData.source = \\
    'scripted'
MODEL_DIR = '/tmp/run'
"""


def test_binding_lines_drop_comments_and_join_continuations():
  assert run_config.binding_lines(OLD) == ["LoopSettings.num_steps = 2", "LoopSettings.seed = 0",
                                           "PairData.source = \\ 'scripted'", "MODEL_DIR = '/tmp/run'"]


def test_changed_bindings_by_hand():
  new = OLD.replace("num_steps = 2", "num_steps = 3").replace("# Parameters for PairData:", "# other comment")
  assert run_config.changed_bindings(OLD, new) == ["- LoopSettings.num_steps = 2", "+ LoopSettings.num_steps = 3"]
  assert run_config.changed_bindings(OLD, OLD + "\n\n# a comment\n") == []
  assert run_config.changed_bindings(OLD, OLD + "X.y = 1\n") == ["+ X.y = 1"]
  moved = (OLD.replace("MODEL_DIR = '/tmp/run'", "MODEL_DIR = '/data/run'") + "run_pipeline.only = ['negotiation/']\n"
           + "run.process_id = 1\nrun.num_processes = 2\n")
  assert run_config.changed_bindings(OLD, moved) == []  # where it lives and which stages run now: not compared


def test_rerun_with_other_bindings_is_refused_unless_allowed(tmp_path):
  run_config.check_rerun(str(tmp_path / "fresh"), OLD, allow_change=False)  # nothing there: fine
  (tmp_path / "config.gin").write_text(OLD)
  run_config.check_rerun(str(tmp_path), OLD, allow_change=False)  # the same config: a resume
  new = OLD.replace("seed = 0", "seed = 1")
  with pytest.raises(run_config.ConfigChangedError, match="--allow_config_change") as e:
    run_config.check_rerun(str(tmp_path), new, allow_change=False)
  assert "- LoopSettings.seed = 0" in str(e.value) and "+ LoopSettings.seed = 1" in str(e.value)
  run_config.check_rerun(str(tmp_path), new, allow_change=True)
  assert (tmp_path / "config.gin").read_text() == OLD  # checking writes nothing


def test_config_is_written_on_accept_only_and_the_previous_one_kept(tmp_path):
  d = tmp_path / "run"
  run_config.register(str(d), OLD)
  run_config.accept(str(tmp_path / "elsewhere"))  # another directory: not this run's
  assert not d.exists()
  run_config.accept(str(d / "checkpoints"))  # the first file under the run directory
  assert (d / "config.gin").read_text() == OLD
  (d / "config.gin").write_text("edited by hand")
  run_config.accept(str(d))  # once only
  assert (d / "config.gin").read_text() == "edited by hand"
  (d / "config.gin").write_text(OLD)
  new = OLD.replace("seed = 0", "seed = 1")
  run_config.register(str(d), new)
  run_config.accept(str(d))
  assert (d / "config.gin").read_text() == new
  assert (d / "config.previous-1.gin").read_text() == OLD
  run_config.register(str(d), new)  # the same again: no new history file
  run_config.accept(str(d))
  assert sorted(os.listdir(d)) == ["config.gin", "config.previous-1.gin"]


def test_discard_forgets_a_refused_config(tmp_path):
  run_config.register(str(tmp_path / "run"), OLD)
  run_config.discard(str(tmp_path / "run"))
  run_config.accept(str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
