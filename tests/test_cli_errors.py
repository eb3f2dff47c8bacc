"""cli_errors.py: one line per failure, gin's decorations folded in, the traceback behind --verbose."""

import pytest

from mtpo_jax import cli_errors


def _gin_style(message):
  return ValueError(message + "\n  In call to configurable 'LoopSettings' (<function LoopSettings at 0x1>)\n"
                    "  In call to configurable 'run' (<function run_job at 0x2>)")


def test_one_line_by_hand():
  assert cli_errors.one_line(ValueError("bad")) == "ValueError: bad"
  assert cli_errors.one_line(_gin_style("LoopSettings.num_steps must be >= 1, got 0")) == (
      "ValueError: LoopSettings.num_steps must be >= 1, got 0")  # the setting is already named
  assert cli_errors.one_line(_gin_style("must be >= 1")) == "ValueError: must be >= 1 (in configurable LoopSettings)"
  parse = ValueError("No configurable matching 'Foo'.\n  In bindings string line 1\n    Foo.bar = 1")
  assert cli_errors.one_line(parse) == "ValueError: No configurable matching 'Foo'. | In bindings string line 1 | Foo.bar = 1"
  assert cli_errors.one_line(KeyError()) == "KeyError"
  syntax = SyntaxError("Unable to parse value.", ("run.gin", 3, 25, "A.x = = 3\n"))
  assert cli_errors.one_line(syntax) == "SyntaxError: Unable to parse value. (run.gin, line 3: 'A.x = = 3')"


def test_a_missing_optional_module_names_its_extra():
  # The main job's SFT reads SeqIO tasks: without the data extra the line says how to get it.
  missing = ModuleNotFoundError("No module named 'seqio'", name="seqio")
  assert cli_errors.one_line(missing) == ("ModuleNotFoundError: No module named 'seqio'; it comes with the 'data' "
                                          "extra: pip install -e '.[data]'")
  assert cli_errors.one_line(ModuleNotFoundError("No module named 'yaml'", name="yaml")) == (
      "ModuleNotFoundError: No module named 'yaml'")


def test_run_command_prints_one_line_and_returns_1(capsys, monkeypatch):
  monkeypatch.delenv(cli_errors.VERBOSE_ENV, raising=False)

  def fails():
    raise FileNotFoundError("no config.gin in 'runs/x'")
  assert cli_errors.run_command("prog", fails) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("prog: error: FileNotFoundError: no config.gin in 'runs/x'")
  assert "Traceback" not in err
  assert cli_errors.run_command("prog", lambda: None) == 0 and cli_errors.run_command("prog", lambda: 75) == 75


def test_verbose_flag_or_environment_shows_the_traceback(capsys, monkeypatch):
  def fails():
    raise RuntimeError("boom")
  assert cli_errors.run_command("prog", fails, verbose=True) == 1
  err = capsys.readouterr().err
  assert "Traceback" in err and err.rstrip().endswith("prog: error: RuntimeError: boom")
  monkeypatch.setenv(cli_errors.VERBOSE_ENV, "1")
  cli_errors.run_command("prog", fails)
  assert "Traceback" in capsys.readouterr().err


def test_multiline_errors_keep_their_detail_below_the_line(capsys):
  class Refused(ValueError):
    multiline_message = True

  def fails():
    raise Refused("config changed:\n    - A.x = 1\n    + A.x = 2\n  In call to configurable 'run' (<fn>)")
  cli_errors.run_command("prog", fails)
  lines = capsys.readouterr().err.splitlines()
  assert lines[0].startswith("prog: error: Refused: config changed:")
  assert lines[1:] == ["    - A.x = 1", "    + A.x = 2"]


def test_ctrl_c_is_one_line_and_130(capsys):
  def interrupted():
    raise KeyboardInterrupt
  assert cli_errors.run_command("prog", interrupted) == 130
  assert capsys.readouterr().err == "prog: interrupted\n"


def test_usage_errors_pass_through():
  def usage():
    raise SystemExit(2)
  with pytest.raises(SystemExit):
    cli_errors.run_command("prog", usage)


def test_setup_logging_shows_info_and_keeps_other_handlers(capfd):
  import logging
  root = logging.getLogger()
  saved = (list(root.handlers), root.level)
  library = logging.StreamHandler()  # what an imported library installs: plain, WARNING-level root
  keep = logging.NullHandler()  # e.g. a test runner's capture handler
  root.handlers[:] = [library, keep]
  root.setLevel(logging.WARNING)
  try:
    cli_errors.setup_logging()
    cli_errors.setup_logging()  # twice (one process, several runs): still one stderr handler
    logging.getLogger("mtpo_jax.test").info("resumed from step 4")
    err = capfd.readouterr().err
    assert err.count("INFO mtpo_jax.test: resumed from step 4") == 1
    assert library not in root.handlers and keep in root.handlers
  finally:
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
