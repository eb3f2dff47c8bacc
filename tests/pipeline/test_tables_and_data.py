"""The result tables (the paper's numbers transcribed consistently; orderings judged from our intervals), the data
stage (files in the released formats that the SFT splits read back to exactly the generated examples), and the
learned judges' inputs for negotiation conversations (the car header, never the hidden budget)."""

import json
import os

import numpy as np
import pytest

from mtpo_jax.testing import project_vocabulary
from mtpo_jax.data import education_examples as ex
from mtpo_jax.data import negotiation_examples as nx
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.envs.negotiation.generator import record_to_conversation
from mtpo_jax.oracles import learned
from mtpo_jax.pipeline import data_stages, tables


def test_paper_table1_is_complementary_as_transcribed():
  m = tables.PAPER_TABLE1
  assert m.shape == (8, 8)
  np.testing.assert_allclose(m + m.T, np.ones((8, 8)), atol=1e-3)  # the digest's sanity check (A13)


def _result(names, matrix, half_width):
  m = np.array(matrix, float)
  return {"names": names, "matrix": m.tolist(), "low": (m - half_width).tolist(), "high": (m + half_width).tolist()}


def test_ordering_verdicts_follow_the_intervals():
  names = ["SFT", "RLHF-r", "Nash-r", "RLHF-v", "Nash-v", "RLHF-m", "MTPO", "MTPO-tau"]
  # a matrix where row i beats col j with 0.5 + 0.05 (i - j): a strict ordering by index
  m = [[0.5 + 0.05 * (i - j) for j in range(8)] for i in range(8)]
  narrow = {c: v for c, _, v in tables.ordering_checks(_result(names, m, 0.02))}
  assert narrow["(i) every multi-turn method beats every single-turn method"] == "holds"
  assert narrow["(iv) MTPO-tau beats MTPO"] == "holds"
  assert narrow["(ii) single-turn RLHF beats single-turn Nash-MD"] == "not seen"  # Nash-r (2) > RLHF-r (1) here
  wide = {c: v for c, _, v in tables.ordering_checks(_result(names, m, 0.2))}
  assert wide["(iv) MTPO-tau beats MTPO"] == "same direction"
  missing = {c: v for c, _, v in tables.ordering_checks(_result(["SFT", "MTPO"], [[.5, .4], [.6, .5]], 0.01))}
  assert missing["MTPO beats SFT"] == "holds" and missing["(iv) MTPO-tau beats MTPO"] == "n/a"


def test_negotiation_table_puts_the_paper_beside_ours():
  res = {"names": ["SFT", "MTPO (pref. data)"], "scores": [12.5, 13.25], "score_low": [12.0, 12.75],
         "score_high": [13.0, 13.75], "n_contexts": 8}
  text = tables.negotiation_table(res)
  assert "| MTPO (pref. data) | 13.25 [12.75, 13.75] | 58.6 (0.3) |" in text and "| SFT | 12.50 [12.00, 13.00] | - |" in text


def test_data_stage_round_trips_into_the_sft_splits(tmp_path):
  summary = data_stages.write_data(str(tmp_path), seed=0, education_train=12, education_eval=4,
                                   negotiation_train=6, negotiation_eval=3)
  assert summary["education_records"] == 16 and summary["negotiation_records"] == 9
  education = str(tmp_path / "education")
  for split, num in (("train", 12), ("eval", 4)):
    assert ex.sft_examples("teacher", split, num, data_dir=education) == ex.sft_examples("teacher", split, num)
  student = ex.sft_examples("student", "train", 12, data_dir=education)
  assert student and all("| learns best:" in e["inputs"] for e in student)
  seller = nx.seller_sft_examples("train", 6, data_dir=str(tmp_path / "negotiation"))
  assert seller == nx.seller_sft_examples("train", 6)
  assert nx.seller_sft_examples("eval", 3, data_dir=str(tmp_path / "negotiation")) == nx.seller_sft_examples("eval", 3)
  assert all(e["inputs"].startswith("car: ") and e["inputs"].endswith("Seller:") and "budget" not in e["inputs"]
             for e in seller)
  with pytest.raises(ValueError, match="holds 12 train records, 13 were asked for"):
    ex.sft_examples("teacher", "train", 13, data_dir=education)
  with pytest.raises(FileNotFoundError, match="no conversations_train"):
    ex.sft_examples("teacher", "train", 1, data_dir=str(tmp_path))


def test_vocabulary_stage_trains_on_the_written_data(tmp_path):
  data_stages.write_data(str(tmp_path / "data"), 0, 60, 4, 30, 3)
  summary = data_stages.train_vocabulary(str(tmp_path / "vocab"), str(tmp_path / "data"), vocab_size=400)
  vocab = Vocabulary(summary["path"])
  assert summary["path"] == str(tmp_path / "vocab" / "spm.model") and 100 < vocab.vocab_size <= 400
  assert vocab.decode(vocab.encode("topic: Photosynthesis Teacher:")) == "topic: Photosynthesis Teacher:"


def test_learned_judges_render_negotiation_with_the_visible_car_only(tmp_path):
  data_stages.write_data(str(tmp_path), 0, 2, 1, 2, 1)
  records = json.load(open(os.path.join(tmp_path, "negotiation", "negotiation_train.json")))
  conv = [record_to_conversation(r) for r in records]
  vocab = project_vocabulary()
  rm = learned.reward_model_inputs(conv, vocab, 256)
  pm = learned.preference_model_inputs(conv[:1], conv[1:], vocab, 256)
  assert rm[0].startswith(nx.header(records[0], hidden=False) + "\n")
  assert pm[0].startswith(nx.header(records[0], hidden=False) + "\nA:")
  assert not any(str(records[0]["background_info"]["buyer_budget"]) in x.split("\n")[0] for x in rm + pm)


def test_results_md_has_the_intransitive_section_only_under_the_panel(tmp_path):
  """write_results adds the exploitability proxy, the profiles and the twin when the evaluation's judge was the
  panel, and nothing when it was the rubric."""
  from mtpo_jax.envs.education import strategy_game
  strategies = [n.split(":", 1)[1] for n in strategy_game.CANONICAL]
  names = ["SFT", "RLHF-m", "MTPO", *strategies]
  m = np.full((len(names), len(names)), 0.5)
  for a, b in (("discover", "interactive"), ("interactive", "lecture"), ("lecture", "discover"), ("MTPO", "SFT"),
               ("lecture", "MTPO"), ("discover", "RLHF-m")):
    m[names.index(a), names.index(b)], m[names.index(b), names.index(a)] = 0.6, 0.4
  profile = {"asks_first": 0.0, "asks": 0.0, "topical_turns": 0.1,
             "styles": {"interactive": 0.2, "lecture": 0.4, "hands_on": 0.2, "creative": 0.1, "assessment": 0.1,
                        "none": 0.0}}
  edu = {**_result(names, m, 0.05), "scores": None, "seed_std": None, "n_contexts": 8, "judge": "population",
         "strategy_profiles": {"SFT": profile, "MTPO": profile}}
  out = tmp_path / "education" / "evaluation"
  out.mkdir(parents=True)
  (out / "win_matrix.json").write_text(json.dumps(edu))
  (out / "win_matrix.md").write_text("# title\n\n| table |\nPolicies:\n- x\n")
  text = tables.write_results(str(tmp_path), {"education/evaluation": 1.0}, "cmd")
  assert "## The intransitive judge" in text
  assert "| RLHF-m | discover | 0.600 [0.55, 0.65] |" in text and "| MTPO | lecture | 0.600" in text
  assert "| SFT | 0.00 | 0.00 | 0.10 |" in text
  assert "mu = the trained SFT policy's profile" in text and "MTPO vs RLHF-m: 0.500" in text
  (out / "win_matrix.json").write_text(json.dumps({**edu, "judge": "rubric"}))
  assert "intransitive" not in tables.write_results(str(tmp_path), {"education/evaluation": 1.0}, "cmd")
