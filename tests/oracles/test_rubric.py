"""RubricJudge: exact antisymmetry, ranking adapting over stubborn teachers, robustness to degenerate text."""

import dataclasses

import numpy as np
import pytest

from mtpo_jax.envs.education import attributes, convert, generator
from mtpo_jax.envs.education.env import EducationEnv
from mtpo_jax.oracles.rubric import RubricJudge, preference_from_scores
from mtpo_jax.types import END_OF_CONVERSATION, Conversation, Turn


@pytest.fixture(scope="module")
def held_out():
  """Conversations from a split and seed used nowhere else (the rubric was written before seeing them)."""
  records = generator.generate(1500, seed=2024, split="heldout")
  return records, convert.records_to_conversations(records, prefix="heldout")


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
  """Mann-Whitney AUC from average ranks (ties get their mean rank)."""
  values = np.concatenate([pos, neg])
  order = np.argsort(values, kind="mergesort")
  ranks = np.empty(len(values))
  sorted_vals = values[order]
  i = 0
  while i < len(values):
    j = i
    while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
      j += 1
    ranks[order[i:j + 1]] = (i + j) / 2 + 1
    i = j + 1
  return (ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def test_auc_helper_against_pairwise_count():
  rng = np.random.default_rng(0)
  pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
  pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
  assert _auc(pos, neg) == pytest.approx(pairwise, abs=1e-12)


def test_adapting_teachers_rank_above_stubborn_ones(held_out):
  records, convs = held_out
  scores = RubricJudge().score(convs)
  adapting, stubborn = [], []
  for r, s in zip(records, scores):
    info, truth = r["background_info"], r["ground_truth"]
    mismatch = attributes.teacher_style_of(info["teacher_prefrences"]) != attributes.student_style_of(
        info["student_prefrences"])
    if truth["teacher_adapted"]:
      adapting.append(s)
    elif mismatch and not truth["teacher_asked_preference"]:
      stubborn.append(s)
  assert len(adapting) > 150 and len(stubborn) > 500
  auc = _auc(np.array(adapting), np.array(stubborn))
  assert auc >= 0.9, auc


def test_score_ignores_the_ground_truth_field(held_out):
  _, convs = held_out
  judge = RubricJudge()
  stripped = [Conversation(dataclasses.replace(c.context, extra={}), c.turns, c.done) for c in convs[:200]]
  poisoned = [Conversation(dataclasses.replace(c.context, extra={"ground_truth": {"outcome": 1.0,
                                                                                  "teacher_adapted": True}}),
                           c.turns, c.done) for c in convs[:200]]
  assert np.array_equal(judge.score(convs[:200]), judge.score(stripped))
  assert np.array_equal(judge.score(stripped), judge.score(poisoned))


def _pairs(held_out, n=200):
  """Two different conversations on each context: the record's, and an env rollout of other teacher turns."""
  records, convs = held_out
  env = EducationEnv(max_agent_turns=6)
  a = convs[:n]
  rollouts = env.reset([c.context for c in a])
  donors = [[t["text"] for t in r["conversation"] if t["role"] == "Teacher"] for r in records[n:2 * n]]
  for k in range(6):
    live = [i for i, c in enumerate(rollouts) if not c.done]
    stepped, _ = env.step([rollouts[i] for i in live], [donors[i][k % len(donors[i])] for i in live])
    for i, c in zip(live, stepped):
      rollouts[i] = c
  return a, rollouts


def test_exact_antisymmetry_on_random_pairs(held_out):
  a, b = _pairs(held_out)
  for temperature in (0.3, 1.0, 7.0):
    judge = RubricJudge(temperature=temperature)
    p_ab, p_ba = judge.preference(a, b), judge.preference(b, a)
    assert p_ab.dtype == np.float64 and p_ab.shape == (len(a),)
    assert np.all(p_ab + p_ba == 1.0)
    assert np.all(judge.preference(a, a) == 0.5)
    assert np.all((p_ab >= 0) & (p_ab <= 1)) and len(np.unique(p_ab)) > 20
  rng = np.random.default_rng(1)
  s_a, s_b = rng.normal(0, 10, 5000), rng.normal(0, 10, 5000)
  s_b[:100] = s_a[:100]
  p, q = preference_from_scores(s_a, s_b, 0.7), preference_from_scores(s_b, s_a, 0.7)
  assert np.all(p + q == 1.0) and np.all(p[:100] == 0.5)
  np.testing.assert_allclose(p, 1 / (1 + np.exp(-(s_a - s_b) / 0.7)), rtol=1e-12, atol=1e-15)


def test_judge_rejects_misaligned_pairs(held_out):
  _, convs = held_out
  with pytest.raises(ValueError):
    RubricJudge().preference(convs[:3], convs[1:4])
  with pytest.raises(ValueError):
    RubricJudge().preference(convs[:3], convs[:2])
  with pytest.raises(ValueError):
    RubricJudge(temperature=0.0)


STUFFING = {
    "creative": "imagine story game pretend adventure quest imagine story",
    "hands_on": "let's try experiment hands-on real-world activity build model experiment",
    "interactive": "what do you think? discuss share debate your ideas what do you think?",
    "lecture": "let me explain in other words the key point note that in summary this means",
}


def _rollout(context, teacher_texts, max_turns=6):
  env = EducationEnv(max_agent_turns=max_turns)
  conv = env.reset([context])[0]
  for text in teacher_texts:
    if conv.done:
      break
    conv = env.step([conv], [text])[0][0]
  return conv


def _plain_texts(record):
  return [t["text"] for t in record["conversation"] if t["role"] == "Teacher"]


def test_stuffed_or_repeated_teacher_turns_score_below_plain_ones(held_out):
  records, convs = held_out
  judge = RubricJudge()
  for record, conv in list(zip(records, convs))[:60]:
    ctx = dataclasses.replace(conv.context, extra={})
    plain = _plain_texts(record)
    pref = attributes.student_style_of(ctx.hidden["student_preference"])
    topic = ctx.visible["topic"]
    # Stuffing the *student's preferred* style keywords, alone or appended to the plain turns.
    stuffed = [f"{STUFFING[pref]} {topic}"] * len(plain)
    appended = [f"{t} {STUFFING[pref]}" for t in plain]
    repeated = [plain[0]] * len(plain)
    plain_score = judge.score([_rollout(ctx, plain)])[0]
    for variant in (stuffed, appended, repeated):
      assert judge.score([_rollout(ctx, variant)])[0] < plain_score, (variant[0], plain[0])


def test_empty_and_overlong_turns_are_penalised(held_out):
  records, convs = held_out
  judge = RubricJudge()
  ctx = dataclasses.replace(convs[0].context, extra={})
  plain = _plain_texts(records[0])
  base = judge.score([_rollout(ctx, plain)])[0]
  empty = plain[:1] + [""] + plain[1:]
  long = plain[:1] + [" ".join([plain[1]] * 12)] + plain[2:]
  assert judge.score([_rollout(ctx, empty)])[0] < base
  assert judge.score([_rollout(ctx, long)])[0] < base


def _without_marker(conv):
  last = conv.turns[-1]
  text = last.text.replace(END_OF_CONVERSATION, "").strip()
  return Conversation(conv.context, conv.turns[:-1] + (Turn(last.role, text, last.is_agent),), True)


def test_unfinished_conversation_scores_below_finished_one(held_out):
  records, convs = held_out
  judge = RubricJudge()
  finished = judge.score(convs[:300])
  unfinished = judge.score([_without_marker(c) for c in convs[:300]])
  reasons = np.array([r["ground_truth"]["end_reason"] for r in records[:300]])
  proper = reasons == "wrap_up"
  assert proper.sum() > 200
  # All else equal, dropping the final marker costs exactly the ending bonus and penalty ...
  np.testing.assert_allclose(finished[proper] - unfinished[proper], 1.0)
  # ... and after a give-up or a walk-out, which already cost the penalty, it changes nothing.
  np.testing.assert_allclose(finished[~proper], unfinished[~proper])


def test_breakdown_sums_to_score_and_hostility_costs(held_out):
  _, convs = held_out
  judge = RubricJudge()
  conv = convs[3]
  assert sum(judge.breakdown(conv).values()) == pytest.approx(judge.score([conv])[0])
  ctx = dataclasses.replace(conv.context, extra={})
  text = "Gravity pulls every object with mass toward every other object with mass."
  kind = _rollout(ctx, [text] * 1 + ["Let me explain: the more mass an object has, the stronger its pull."])
  mean = _rollout(ctx, [text] * 1 + ["You're lazy and not trying. The more mass an object has, the stronger its pull."])
  assert judge.breakdown(mean)["respect"] == -1.0 and judge.score([mean])[0] < judge.score([kind])[0]


def test_a_lesson_without_teaching_earns_no_bonus(held_out):
  """The exploit RL from SFT found before the substance gate: praise, then the student's polite goodbye. By hand:
  no teaching turn (substance -3), so participation (+1/6 for the praise), engagement (+2: one positive student
  turn) and the proper ending (+0.5) are scaled by 0 / 3; discovery, adaptation and clarity are 0: score -3."""
  _, convs = held_out
  ctx = convs[0].context
  quit_early = Conversation(ctx, (Turn("teacher", "Great work today", True),
                                  Turn("student", f"Thanks, that was really helpful. Bye! {END_OF_CONVERSATION}",
                                       False)), True)
  judge = RubricJudge()
  terms = judge.breakdown(quit_early)
  assert terms["substance"] == -3.0
  assert terms["engagement"] == 0.0 and terms["ending"] == 0.0 and terms["participation"] == 0.0
  assert float(judge.score([quit_early])[0]) == pytest.approx(-3.0)
  # Penalties are not gated: a hostile goodbye still costs its full weight.
  hostile = Conversation(ctx, (Turn("teacher", f"You never listen, this is hopeless. {END_OF_CONVERSATION}", True),), True)
  assert judge.breakdown(hostile)["ending"] <= 0.0
