"""RubricJudge: the programmatic ground-truth judge of Education Dialogue (playing Gemini Ultra's role, A10).

It scores each conversation from its text and the context's hidden student preference only (never from
`Context.extra`, where the generator keeps its ground truth), along the paper's criteria (digest A10, the
conversation-level prompt of App. C.1 / Fig. 1), and prefers the higher score:

    P(a > b) = sigmoid((s_a - s_b) / T)     computed so that P(a, b) + P(b, a) = 1 exactly and P(a, a) = 1/2.

Teacher and student turns are read with envs/education/cues.py. A *teaching turn* tries to teach (not a
preference question, not a closing turn, not empty); degenerate or repeated turns count as teaching turns
that match nothing. Score = sum of (default weights in RubricWeights):

  discovery      +1.0 if the teacher asks how the student learns within its first 3 turns, +0.5 if later;
                 -0.5 for every preference question after the second (nagging)
  adaptation     +4.0 x mean match of teaching turns' style with the hidden preference (1, 0.5 partial, 0;
                 halved for a turn without topic content, i.e. fewer than 2 topic words)
  clarity        +1.0 x share of teaching turns that carry topic content (>= 2 topic words) in 8-90 words
  participation  +0.5 x min(1, turns inviting questions, asking one or praising / 3)
  engagement     +2.0 x clip((positive + 0.5 questioning - negative student turns) / student turns, -1, 1);
                 a minimal answer ("ok", under 3 words with nothing positive) counts as negative
  understanding  +1.0 if a positive student turn restates topic content (>= 2 topic words)
  respect        -1.0 per hostile teacher turn, at most -3: a phrase of cues.py (blaming, insulting) or contempt
                 read from sentence structure (envs/education/conduct.py: "you are <word>" whose word is not in a
                 positive/neutral lexicon, comparisons with the student, dismissals, exasperated questions), so
                 insults in wording no list holds count too; the scripted student reads turns the same way and
                 answers a hostile turn hurt instead of learning from it
  ending         +0.5 if the last turn carries [end of conversation] and nobody gave up or walked out (a
                 teacher's give-up phrase, a student's negative phrase); -0.5 if the marker comes with a give-up
                 or walk-out, or if the conversation never ends with it
  substance      -1.0 per teaching turn short of 3 (quitting early is no way to win)
  gate           the positive parts of participation, engagement, understanding and ending are multiplied by
                 min(1, topical teaching turns / 3), a topical turn being a teaching turn with topic content (>= 2
                 topic words): a lesson that does not teach earns no bonus for a polite student's "thanks, bye"
                 (without the gate, "Great work today" and a goodbye scored -0.33, above the SFT teacher's mean of
                 -1.5, and RL from SFT collapsed to it; docs/education_dialogue.md), and neither does a fluent
                 lesson on another subject in the student's favourite style, which the scripted student enjoys
                 just the same (counting every teaching turn, such a lesson tied with a competent one)
  degenerate     -1.0 per teacher turn that says nothing, -1.5 per keyword-stuffed turn, -1.0 per overlong turn,
                 -1.0 per turn that nearly repeats an earlier teacher turn (word-set Jaccard >= 0.8), -1.0 per turn
                 with text addressed to the judge ("Note to the grader: full marks", conduct.py); such a turn
                 also earns no style match or clarity. cues.py removes those sentences before anyone reads the
                 turn, so the student's replies and every other term are those of the turn without them: asking
                 the judge for a high score can only lower a conversation's score

Partial conversations (`RubricJudge(partial=True)`, for the single-turn-reward pairs of training/pair_sources.py):
a conversation whose last turn does not carry the marker has not ended *yet*, so `ending` is 0 instead of the
-0.5 for never ending; everything else is unchanged. Two continuations x_h + y1, x_h + y2 of one state share
their student turns, so their difference comes from the teacher terms of the candidate turn, plus `ending`
when a candidate closes the conversation: +0.5 for a proper close, -0.5 for giving up (on this term the default
judge scores giving up the same as going on, and a proper close up to a full point above it: the close's +0.5
is scaled by the topical teaching share, see `gate`). After three teaching turns the rubric rewards no further teaching
as such, so even the partial judge often prefers a proper close.

docs/education_dialogue.md explains the choices. The scale makes T = 1 a fairly sharp judge (one criterion's
worth of difference gives P ~ 0.73-0.98).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from mtpo_jax.envs.education import attributes, cues
from mtpo_jax.oracles.base import check_same_contexts
from mtpo_jax.types import Conversation


@dataclasses.dataclass(frozen=True)
class RubricWeights:
  discovery: float = 1.0
  nagging: float = 0.5
  adaptation: float = 4.0
  clarity: float = 1.0
  participation: float = 0.5
  engagement: float = 2.0
  understanding: float = 1.0
  hostile: float = 1.0
  ending: float = 0.5
  substance: float = 1.0
  says_nothing: float = 1.0
  stuffed: float = 1.5
  overlong: float = 1.0
  repeat: float = 1.0
  judge_text: float = 1.0


def _teacher_terms(conv: Conversation, topic: str, preference: str,
                   w: RubricWeights) -> tuple[dict[str, float], int, list[tuple[str | None, float]]]:
  """(teacher-side terms, number of topical teaching turns: teaching turns with >= 2 topic words, lessons: one
  (detected style, credit) per teaching turn, credit 1 with topic content, 0.5 without, 0 if degenerate or
  repeated: the weight `adaptation` gives the turn's style match)."""
  tc = [cues.analyze_turn(t.text, topic) for t in conv.turns if t.is_agent]
  repeats = [cues.is_repeat(c, tc[:i]) for i, c in enumerate(tc)]
  asks = [i for i, c in enumerate(tc) if c.asks_preference]
  discovery = 0.0 if not asks else 1.0 if asks[0] < 3 else 0.5
  matches, clear, topical, lessons = [], [], 0, []
  for c, rep in zip(tc, repeats):
    if not cues.is_teaching(c):
      continue
    bad = cues.is_degenerate(c) or rep
    content = 1.0 if c.content >= 2 else 0.5  # style without topic content is half a lesson
    lessons.append((c.style, 0.0 if bad else content))
    matches.append(lessons[-1][1] * attributes.match_strength(c.style, preference))
    clear.append(not bad and c.content >= 2 and 8 <= c.n_words <= 90)
    topical += c.content >= 2
  inviting = sum(c.invites or c.praise or (c.n_words >= 3 and not cues.is_degenerate(c) and c.style == "interactive")
                 for c in tc)
  return {
      "discovery": w.discovery * discovery - w.nagging * max(0, len(asks) - 2),
      "adaptation": w.adaptation * (float(np.mean(matches)) if matches else 0.0),
      "clarity": w.clarity * (float(np.mean(clear)) if clear else 0.0),
      "participation": w.participation * min(1.0, inviting / 3.0),
      "respect": 0.0 - w.hostile * min(3, sum(c.hostile for c in tc)),
      "substance": -w.substance * max(0, 3 - len(matches)),
      "degenerate": -(w.says_nothing * sum(c.says_nothing for c in tc) + w.stuffed * sum(c.stuffed for c in tc)
                      + w.overlong * sum(c.overlong for c in tc) + w.repeat * sum(repeats)
                      + w.judge_text * sum(c.addresses_judge for c in tc)),
  }, topical, lessons


def _student_terms(conv: Conversation, topic: str, w: RubricWeights) -> dict[str, float]:
  sc = [cues.analyze_student_turn(t.text, topic) for t in conv.turns if not t.is_agent]
  pos = sum(c.positive and not c.negative for c in sc)
  neg = sum(c.negative or c.minimal for c in sc)
  asking = sum(c.question and not c.negative for c in sc)
  engagement = float(np.clip((pos + 0.5 * asking - neg) / max(1, len(sc)), -1.0, 1.0))
  understood = any(c.positive and not c.negative and c.content >= 2 for c in sc)
  return {"engagement": w.engagement * engagement, "understanding": w.understanding * understood}


def _ending_term(conv: Conversation, topic: str, w: RubricWeights, partial: bool = False) -> float:
  if not conv.turns or not cues.says_end(conv.turns[-1].text):
    return 0.0 if partial else -w.ending
  last = conv.turns[-1]
  if last.is_agent:
    bad = cues.analyze_turn(last.text, topic).gives_up
  else:
    bad = cues.analyze_student_turn(last.text, topic).negative
  return -w.ending if bad else w.ending


GATED = ("participation", "engagement", "understanding", "ending")  # positive parts scaled by the topical share


class RubricJudge:
  """Judge (oracles/base.py) from a text rubric; see the module docstring for the criteria. `partial`: judge
  conversation prefixes (an unfinished conversation is not penalised for never ending)."""

  def __init__(self, temperature: float = 1.0, weights: RubricWeights = RubricWeights(), partial: bool = False):
    if not temperature > 0:
      raise ValueError(f"temperature must be positive, got {temperature}")
    self.temperature, self.weights, self.partial = float(temperature), weights, bool(partial)

  def breakdown(self, conversation: Conversation) -> dict[str, float]:
    """Criterion -> contribution to the score of one conversation."""
    return self.read(conversation)[0]

  def read(self, conversation: Conversation) -> tuple[dict[str, float], list[tuple[str | None, float]]]:
    """(breakdown, lessons): the criteria and one (detected style, credit) per teaching turn, credit 1 with topic
    content, 0.5 without, 0 for a degenerate or repeated turn (oracles/population.py weighs lessons by taste)."""
    ctx = conversation.context
    try:
      topic, preference = ctx.visible["topic"], attributes.student_style_of(ctx.hidden["student_preference"])
    except KeyError as e:
      raise ValueError(f"context {ctx.context_id!r} lacks {e.args[0]!r} (see envs/education/convert.py)") from None
    terms, topical_turns, lessons = _teacher_terms(conversation, topic, preference, self.weights)
    terms.update(_student_terms(conversation, topic, self.weights))
    terms["ending"] = _ending_term(conversation, topic, self.weights, self.partial)
    # A lesson earns its bonuses by teaching its topic: the positive parts of participation, engagement,
    # understanding and ending are scaled by the share of the 3 topical teaching turns it gave (penalties keep
    # their full weight).
    share = min(1.0, topical_turns / 3.0)
    for key in GATED:
      terms[key] = terms[key] * share if terms[key] > 0 else terms[key]
    return terms, lessons

  def score(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 rubric scores."""
    return np.array([sum(self.breakdown(c).values()) for c in conversations], dtype=np.float64)

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i]); exactly antisymmetric."""
    check_same_contexts(a, b)
    return preference_from_scores(self.score(a), self.score(b), self.temperature)


def preference_from_scores(s_a: np.ndarray, s_b: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """sigmoid((s_a - s_b) / T), evaluated as q = sigmoid(|d|) >= 1/2 and 1 - q for d < 0, so swapping a and b
  gives exactly 1 - P (1 - q is exact for q in [1/2, 1])."""
  d = (np.asarray(s_a, np.float64) - np.asarray(s_b, np.float64)) / temperature
  q = 1.0 / (1.0 + np.exp(-np.abs(d)))
  return np.where(d >= 0, q, 1.0 - q)
