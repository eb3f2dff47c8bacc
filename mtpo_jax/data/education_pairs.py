"""Judge-labelled preference data on generated Education Dialogue contexts (digest A9 step 3, A8).

Conversation-level pairs: each record and a replay on the same student and topic with a different teacher
policy (`generator.replay`), labelled with P(record better) by the ground-truth RubricJudge.
Single-turn pairs (the paper's single-turn-reward data): the history before one teacher turn, the recorded
turn and an alternative teacher turn taken from the replay at the same position; the judge compares the two
truncated conversations "if the conversation continues with it" (both end there, so the ending criterion
treats them alike). Deterministic by split and index.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Iterator, Sequence

from mtpo_jax.data import education_examples as ex
from mtpo_jax.text.dialogue_format import TokenCounter
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.types import Turn


def _replays(records: Sequence[dict], split: str) -> list[dict]:
  return [generator.replay(r, f"{split}:{i}") for i, r in enumerate(records)]


def conversation_pairs(records: Sequence[dict], split: str, max_input_tokens: int | None,
                       count_tokens: TokenCounter, judge: RubricJudge | None = None) -> Iterator[dict]:
  judge = judge or RubricJudge()
  alts = _replays(records, split)
  a = [record_to_conversation(r, f"{split}-{i}") for i, r in enumerate(records)]
  b = [record_to_conversation(r, f"{split}-{i}") for i, r in enumerate(alts)]
  probs = judge.preference(a, b)
  for r, alt, p in zip(records, alts, probs):
    yield ex.conversation_pair_example(r, alt, float(p), max_input_tokens, count_tokens)


def single_turn_pairs(records: Sequence[dict], split: str, max_input_tokens: int | None,
                      count_tokens: TokenCounter, judge: RubricJudge | None = None) -> Iterator[dict]:
  judge = judge or RubricJudge()
  alts = _replays(records, split)
  chosen, prefixes_a, prefixes_b = [], [], []
  for i, (r, alt) in enumerate(zip(records, alts)):
    teacher_turns = [j for j, t in enumerate(r["conversation"]) if t["role"].lower() == "teacher"
                     and j < len(alt["conversation"]) and alt["conversation"][j]["role"].lower() == "teacher"
                     and alt["conversation"][j]["text"] != t["text"]]
    if not teacher_turns:
      continue
    j = random.Random(f"single-turn:{split}:{i}").choice(teacher_turns)
    conv = record_to_conversation(r, f"{split}-{i}")
    alternative = alt["conversation"][j]["text"]
    prefixes_a.append(dataclasses.replace(conv, turns=conv.turns[:j + 1], done=False))
    prefixes_b.append(dataclasses.replace(conv, turns=conv.turns[:j] + (Turn("teacher", alternative, True),),
                                          done=False))
    chosen.append((r, j, alternative))
  probs = judge.preference(prefixes_a, prefixes_b) if chosen else []
  for (r, j, alternative), p in zip(chosen, probs):
    yield ex.single_turn_pair_example(r, j, alternative, float(p), max_input_tokens, count_tokens)
