"""The win-rate matrix (papers/digest.md A13) against hand-computed Bradley-Terry averages; exact complementarity
M + M^T = 1 even for a position-biased judge; bootstrap intervals that cover the mean and shrink like 1/sqrt(n);
the reports; the policy loader; and one tiny end-to-end CLI call on random T5 policies saved as SFT and RL runs."""

import dataclasses
import json
import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH
from mtpo_jax.evaluation import evaluate, report
from mtpo_jax.evaluation import policies as pol
from mtpo_jax.evaluation.win_matrix import grouped_win_matrix, win_matrix
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.t5 import T5
from mtpo_jax.rl.actor_critic import ActorCriticState
from mtpo_jax.checkpoints import Checkpointer, CheckpointError, load_policy
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.testing import project_vocabulary, tiny_config
from mtpo_jax.training.state import TrainState
from mtpo_jax.types import Context, Conversation, Turn


class NumberJudge:
  """Bradley-Terry over the number written in each conversation's first turn ("s=<x>"), plus `bias` added to the
  first argument's logit: bias != 0 makes the judge prefer whichever conversation is shown first."""

  def __init__(self, bias=0.0):
    self.bias = bias

  def score(self, conversations):
    return np.array([float(c.turns[0].text.split("=")[1]) for c in conversations])

  def preference(self, a, b):
    return 1.0 / (1.0 + np.exp(-(self.score(a) - self.score(b) + self.bias)))


def _conversations(scores):
  """name -> conversations with the given [K] scores, aligned on contexts c0..c{K-1}."""
  out = {}
  for name, s in scores.items():
    out[name] = [Conversation(Context(f"c{k}", {"topic": "t"}, {"student_preference": "p"}),
                              (Turn("teacher", f"s={float(x)!r}", True), Turn("student", "ok", False)), True)
                 for k, x in enumerate(s)]
  return out


def _sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


def test_matrix_matches_bradley_terry_by_hand():
  rng = np.random.default_rng(0)
  scores = {"a": rng.normal(0, 1, 20), "b": rng.normal(0.5, 1, 20), "c": rng.normal(-1, 2, 20)}
  result = win_matrix(_conversations(scores), NumberJudge(), resamples=200, seed=0)
  names = list(scores)
  assert result.names == tuple(names) and result.n_contexts == 20
  for i, x in enumerate(names):
    for j, y in enumerate(names):
      expected = 0.5 if i == j else sum(_sigmoid(scores[x][k] - scores[y][k]) for k in range(20)) / 20
      assert result.matrix[i, j] == pytest.approx(expected, abs=1e-12)
    assert result.scores[i] == pytest.approx(sum(scores[x]) / 20, abs=1e-12)


def test_seed_groups_average_every_seed_pair_by_hand():
  """Method x has seeds x0, x1 and y has y0, y1, y2: the entry is the mean over the 6 seed pairs and contexts,
  the seed std is the std of the 6 seed-pair means, the score the mean over seeds and contexts."""
  rng = np.random.default_rng(3)
  runs = {f"{m}{s}": rng.normal(0.3 * s, 1, 12) for m, n in (("x", 2), ("y", 3)) for s in range(n)}
  conv = _conversations(runs)
  result = grouped_win_matrix({"x": [conv["x0"], conv["x1"]], "y": [conv["y0"], conv["y1"], conv["y2"]]},
                              NumberJudge(bias=0.7), resamples=100, seed=0)
  sym = lambda d: (_sigmoid(d + 0.7) + 1.0 - _sigmoid(-d + 0.7)) / 2  # both orders, symmetrised
  pair_means = [np.mean([sym(runs[f"x{a}"][k] - runs[f"y{b}"][k]) for k in range(12)])
                for a in range(2) for b in range(3)]
  assert result.matrix[0, 1] == pytest.approx(np.mean(pair_means), abs=1e-12)
  assert result.matrix[0, 1] + result.matrix[1, 0] == 1.0
  assert result.seed_std[0, 1] == pytest.approx(np.std(pair_means), abs=1e-12) == result.seed_std[1, 0]
  assert result.scores[1] == pytest.approx(np.mean([runs[f"y{b}"] for b in range(3)]), abs=1e-12)
  assert result.seed_counts == (2, 3) and result.low[0, 1] <= result.matrix[0, 1] <= result.high[0, 1]
  table = report.markdown_table(result)
  assert f"({report._short(np.std(pair_means), 3)})" in table and "x 2, y 3" in table


def test_complementary_exactly_with_a_position_biased_judge():
  rng = np.random.default_rng(1)
  scores = {name: rng.normal(0, 1.5, 37) for name in "abcd"}
  bias = 0.8
  result = win_matrix(_conversations(scores), NumberJudge(bias), resamples=100, seed=3)
  m = result.matrix
  assert np.array_equal(m + m.T, np.ones_like(m))  # exact, not approximate
  assert np.allclose(result.low + result.high.T, 1.0) and np.all(np.diag(result.low) == 0.5)
  # Each entry is the symmetrised preference (P(a, b) + 1 - P(b, a)) / 2, by hand.
  d = scores["a"] - scores["b"]
  by_hand = sum((_sigmoid(x + bias) + 1 - _sigmoid(-x + bias)) / 2 for x in d) / len(d)
  assert m[0, 1] == pytest.approx(by_hand, abs=1e-12)
  # One order alone would not be complementary: the bias shows up as P(a, b) + P(b, a) > 1.
  one_order = np.mean([_sigmoid(x + bias) for x in d]) + np.mean([_sigmoid(-x + bias) for x in d])
  assert one_order > 1.2


def test_bootstrap_covers_the_mean_and_shrinks_like_one_over_sqrt_n():
  widths = {}
  for n in (50, 800):
    rng = np.random.default_rng(n)
    result = win_matrix(_conversations({"a": rng.normal(0.3, 1, n), "b": rng.normal(0, 1, n)}), NumberJudge(),
                        resamples=2000, seed=0)
    assert np.all(result.low <= result.matrix) and np.all(result.matrix <= result.high)
    assert np.all(result.score_low <= result.scores) and np.all(result.scores <= result.score_high)
    assert result.low[0, 1] < result.high[0, 1]
    widths[n] = result.high[0, 1] - result.low[0, 1]
  ratio = widths[50] / widths[800]  # sqrt(800 / 50) = 4
  assert 2.5 < ratio < 6.0, widths


def test_reports_have_the_right_shape_and_write_files(tmp_path):
  rng = np.random.default_rng(2)
  scores = {name: rng.normal(0, 1, 30) for name in ("sft", "mtpo", "rlhf")}
  convs = _conversations(scores)
  result = win_matrix(convs, NumberJudge(), resamples=100, seed=0)
  text = report.markdown_table(result)
  table = [line for line in text.splitlines() if line.startswith("| ")][:4]
  assert table[0] == "| row \\ col | sft | mtpo | rlhf |"
  for i, row in enumerate(table[1:]):
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 4 and cells[0] == result.names[i]
    for j, cell in enumerate(cells[1:]):
      assert cell == "-" if i == j else re.fullmatch(r"\.\d{3} \[\.\d{2}, \.\d{2}\]", cell), cell
  assert "30 held-out contexts" in text and "| method | mean score" in text

  report.plot_heatmap(result, str(tmp_path / "m.png"))
  run_a, run_b = tmp_path / "a", tmp_path / "b"
  run_a.mkdir()
  run_b.mkdir()
  with open(run_a / "metrics.jsonl", "w") as f:  # step 2 logged twice (a resume): the last one counts
    for step, w in ((1, 0.5), (2, 0.1), (2, 0.6), (3, 0.7)):
      f.write(json.dumps({"step": step, "train/win_rate_vs_reference": w, "train/win_rate_ci95": 0.05,
                          "train/kl_to_reference": 0.01 * step, "train/value_loss": 1.0 / step}) + "\n")
  with open(run_b / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"step": 1, "train/loss": 3.0}) + "\n")
  steps, values = report.read_metrics(str(run_a))["win_rate_vs_reference"]
  assert steps.tolist() == [1, 2, 3] and values.tolist() == [0.5, 0.6, 0.7]
  keys = report.plot_learning_curves({"a": str(run_a), "b": str(run_b), "none": str(tmp_path / "missing")},
                                     str(tmp_path / "c.png"))
  assert keys == ["win_rate_vs_reference", "kl_to_reference", "value_loss"]
  assert report.plot_learning_curves({"b": str(run_b)}, str(tmp_path / "empty.png")) == []
  for name in ("m.png", "c.png", "empty.png"):
    assert (tmp_path / name).stat().st_size > 1000

  samples = report.samples_markdown(convs, NumberJudge(), num_contexts=2)
  assert samples.count("## Context") == 2 and samples.count("### mtpo") == 2
  assert f"score {scores['rlhf'][1]:.3f}" in samples and "**student**: ok" in samples


def test_policy_loader_names_the_directory_without_checkpoints(tmp_path):
  for d in (tmp_path / "empty", tmp_path / "no_steps", tmp_path / "does_not_exist"):
    if d.name != "does_not_exist":
      (d / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=re.escape(str(d))):
      load_policy(str(d), T5Config())


def test_model_config_from_gin_files_and_bindings():
  config = pol.model_config(None, ["models/t5_tiny.gin"], ["T5Config.vocab_size = 3072"])
  assert (config.vocab_size, config.d_model, config.num_encoder_layers) == (3072, 64, 2)


# END TO END: two random tiny T5 policies saved as an SFT and an RL run, evaluated by the CLI.

CONFIG = tiny_config(3072, layers=1)
CONFIG_GIN = "\n".join(f"T5Config.{k} = {v!r}" for k, v in (
    ("vocab_size", 3072), ("d_model", 32), ("d_kv", 8), ("d_ff", 64), ("num_heads", 4), ("num_encoder_layers", 1),
    ("num_decoder_layers", 1))) + "\n"


def _save_runs(tmp_path):
  x = jnp.ones((1, 4), jnp.int32)
  p0, p1 = (nn.unbox(T5(CONFIG).init(jax.random.PRNGKey(s), x, x)["params"]) for s in (0, 1))
  tx = optax.sgd(0.1)
  sft, rl = tmp_path / "sft", tmp_path / "rl"
  ckpt = Checkpointer(str(sft / "checkpoints"), 1)
  ckpt.save(5, TrainState.create(p0, tx, jax.random.PRNGKey(0)), {"data_position": 5}, force=True)
  ckpt.close()
  state = ActorCriticState(TrainState.create(p1, tx, jax.random.PRNGKey(1)),
                           TrainState.create(p0, tx, jax.random.PRNGKey(2)))
  ckpt = Checkpointer(str(rl / "checkpoints"), 1)
  ckpt.save(3, {"state": state, "reference": p0}, {"iteration": 3, "algorithm": "mtpo"}, force=True)
  ckpt.close()
  (sft / "config.gin").write_text("MODEL_DIR = 'x'\n# Parameters for T5Config:\n" + CONFIG_GIN
                                  + "train_sft.task_feature_lengths = {'inputs': 256, 'targets': 64}\n")
  (rl / "config.gin").write_text(CONFIG_GIN + "train_rl.algorithm = 'mtpo'\nConversationSettings.input_length = 64\n"
                                 "ConversationSettings.max_agent_turns = 2\nConversationSettings.max_turn_tokens = 8\n")
  with open(rl / "metrics.jsonl", "w") as f:
    for step in (1, 2):
      f.write(json.dumps({"step": step, "train/win_rate_vs_reference": 0.5, "train/win_rate_ci95": 0.1,
                          "train/kl_to_reference": 0.0, "train/value_loss": 1.0}) + "\n")
  return str(sft), str(rl), p1


def test_cli_end_to_end_on_two_tiny_policies(tmp_path, capsys):
  assert project_vocabulary().vocab_size <= CONFIG.vocab_size
  sft, rl, p1 = _save_runs(tmp_path)
  loaded = load_policy(rl, CONFIG)
  assert loaded.layout == "rl" and loaded.step == 3 and loaded.meta["algorithm"] == "mtpo"
  assert jax.tree.all(jax.tree.map(lambda a, b: np.array_equal(a, b), loaded.params, jax.device_get(p1)))
  assert pol.model_config(sft) == CONFIG

  out = tmp_path / "eval"
  result = evaluate.evaluate(["--run", f"sft={sft}", "--run", f"again={sft}/checkpoints", "--run", f"mtpo={rl}",
                              "--out", str(out), "--num_contexts", "4", "--resamples", "200", "--num_samples", "2"])
  printed = capsys.readouterr().out
  assert "| row \\ col | sft | again | mtpo |" in printed
  for name in ("win_matrix.md", "win_matrix.json", "win_matrix.png", "curves.png", "samples.md"):
    assert (out / name).stat().st_size > 0, name
  data = json.loads((out / "win_matrix.json").read_text())
  assert data["settings"] == {"max_agent_turns": 2, "input_length": 64, "max_turn_tokens": 8, "temperature": 1.0}
  assert data["n_contexts"] == 4 and data["runs"]["mtpo"][0]["layout"] == "rl" and data["runs"]["sft"][0]["step"] == 5
  m = np.array(data["matrix"])
  assert np.array_equal(m + m.T, np.ones((3, 3)))
  assert set(data["strategy_profiles"]) == {"sft", "again", "mtpo"} and data["judge"] == "rubric"
  assert data["strategy_profiles"]["sft"] == data["strategy_profiles"]["again"]
  # Under the rater panel, with canonical strategies as challengers: a cycle among them shows in the matrix.
  panel = evaluate.evaluate(["--run", f"sft={sft}", "--run", "discover=canonical:discover", "--run",
                             "interactive=canonical:interactive", "--run", "lecture=canonical:lecture", "--out",
                             str(tmp_path / "panel"), "--num_contexts", "48", "--split", "test", "--resamples", "50", "--judge",
                             "population", "--max_agent_turns", "3"])
  d, i, lec = (panel.names.index(n) for n in ("discover", "interactive", "lecture"))
  assert panel.matrix[d, i] > 0.5 and panel.matrix[i, lec] > 0.5 and panel.matrix[lec, d] > 0.5
  assert json.loads((tmp_path / "panel" / "win_matrix.json").read_text())["strategy_profiles"]["discover"][
      "asks_first"] == 1.0
  # The same policy under two names plays identical conversations (shared sampling keys): a tie, exactly.
  assert result.matrix[0, 1] == 0.5 and result.low[0, 1] == 0.5 and result.high[0, 1] == 0.5
  samples = (out / "samples.md").read_text()
  assert samples.count("## Context") == 2 and samples.count("### mtpo") == 2 and "score" in samples
  # Two "seeds" of one method (the SFT and the RL policy): every entry averages the seed pairs, so against
  # SFT it is (1/2 + P(mtpo > sft)) / 2 from the single-seed matrix above.
  grouped = evaluate.evaluate(["--run", f"sft={sft}", "--run", f"mixed={sft},{rl}", "--out", str(tmp_path / "e2"),
                               "--num_contexts", "4", "--resamples", "50"])
  assert grouped.seed_counts == (1, 2)
  assert grouped.matrix[1, 0] == pytest.approx((0.5 + result.matrix[2, 0]) / 2, abs=1e-12)
  assert grouped.seed_std[1, 0] == pytest.approx(abs(result.matrix[2, 0] - 0.5) / 2, abs=1e-12)
  assert "(sd)" in (tmp_path / "e2" / "win_matrix.md").read_text()
  # A learned student (here the random SFT policy's weights) replaces the scripted one: the teacher turns of the
  # first agent turn are the same (same keys), the student's replies are not the scripted student's.
  from mtpo_jax.envs import registry
  contexts = registry.contexts("education", 2, 0, "test")
  settings = ConversationSettings(max_agent_turns=2, input_length=64, max_turn_tokens=8, vocab_path=DEFAULT_SPM_PATH)
  scripted = pol.play({"sft": loaded}, settings, contexts)["sft"]
  learned = pol.play({"sft": loaded}, dataclasses.replace(settings, student_checkpoint=f"{sft}/checkpoints"),
                     contexts)["sft"]
  assert [c.turns[0].text for c in learned] == [c.turns[0].text for c in scripted]
  # copies: context-major, copy 0 is the single-copy conversation, other copies sample with their own keys
  three = pol.play({"sft": loaded}, settings, contexts, copies=3)["sft"]
  assert len(three) == 6 and [c.context.context_id for c in three[:3]] == [contexts[0].context_id] * 3
  assert [three[0].turns, three[3].turns] == [c.turns for c in scripted]
  assert len({c.turns for c in three[:3]}) > 1
  # a scripted teacher of the generator is a nameable method: it plays the same contexts as the policies
  ceiling = evaluate.evaluate(["--run", f"sft={sft}", "--run", "ceiling=scripted:hands_on:might_adapt",
                               "--out", str(tmp_path / "e3"), "--num_contexts", "4", "--resamples", "50",
                               "--max_agent_turns", "2", "--input_length", "64", "--max_turn_tokens", "8"])
  from mtpo_jax.envs.education import scripted_teacher
  from mtpo_jax.oracles.rubric import RubricJudge
  by_hand = scripted_teacher.play("scripted:hands_on:might_adapt", registry.contexts("education", 4, 0, "eval"),
                                  max_agent_turns=2)
  assert ceiling.scores[1] == pytest.approx(float(RubricJudge().score(by_hand).mean()))
  with pytest.raises(ValueError, match="is not a scripted teacher"):
    evaluate.evaluate(["--run", f"sft={sft}", "--run", "bad=scripted:chalk:calm", "--out", str(tmp_path / "e4")])
  with pytest.raises(ValueError, match="copies must be >= 1"):
    pol.play({"sft": loaded}, settings, contexts, copies=0)
  student_turns = lambda convs: [t.text for c in convs for t in c.turns if not t.is_agent]
  assert student_turns(learned) and student_turns(learned) != student_turns(scripted)
  with pytest.raises(ValueError, match="for 'education' only"):
    registry.make_environment(ConversationSettings("negotiation", 2), 0, student=object())
  with pytest.raises(ValueError, match="for 'education' only"):
    ConversationSettings("negotiation", student_checkpoint=f"{sft}/checkpoints")
