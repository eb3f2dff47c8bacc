"""SeqIO tasks for the explicit-reward negotiation environment (the paper's Car Dealer analogue).

    negotiation_seller_sft          car + history -> next seller turn (the buyer's budget stays hidden)
    negotiation_buyer_sft           car + hidden budget/features/personality + history -> next buyer turn
    negotiation_rl_contexts         seller prompt of an empty conversation -> background (JSON)
    negotiation_conversation_pairs  two conversations on one context -> P(A better) = BT over sale prices
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Iterator

from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.data.education_examples import flat_map
from mtpo_jax.data.negotiation_examples import header as _header
from mtpo_jax.data.negotiation_examples import turn_examples as _turn_examples
from mtpo_jax.data.task_contexts import context_to_json
from mtpo_jax.envs.negotiation.generator import record_to_conversation

NUM = {"train": 4000, "validation": 400}
SEED = {"train": 0, "validation": 1}
KINDS = ("seller_sft", "buyer_sft", "rl_contexts", "conversation_pairs")
PRICE_SCALE = 1000.0  # Bradley-Terry temperature in dollars (the paper gives none)


def task_name(kind: str) -> str:
  return f"negotiation_{kind}"


@functools.lru_cache(maxsize=None)
def _records(split: str, strategies: tuple[str, ...] | None = None) -> tuple:
  from mtpo_jax.envs.negotiation import generator
  kwargs = {"strategies": strategies} if strategies else {}
  return tuple(generator.generate_dataset(NUM[split], SEED[split], **kwargs))


def examples(kind: str, split: str, max_input_tokens: int | None = 511, count_tokens=fmt._words) -> Iterator[dict]:
  if kind == "seller_sft":
    yield from flat_map(_turn_examples, _records(split), role="Seller", hidden=False,
                        max_input_tokens=max_input_tokens, count_tokens=count_tokens)
  elif kind == "buyer_sft":
    yield from flat_map(_turn_examples, _records(split), role="Buyer", hidden=True,
                        max_input_tokens=max_input_tokens, count_tokens=count_tokens)
  elif kind == "rl_contexts":
    for r in _records(split):
      inputs, _ = fmt.fit_history(_header(r, False), [], "Seller:", None)
      yield {"inputs": inputs, "targets": r["background_info"]["car"].get("model", "car"),
             "background": json.dumps(r["background_info"], sort_keys=True), "id": r["id"], "truncated": False,
             # the start state only: the scripted seller's strategy that played the record stays out
             "context": context_to_json(dataclasses.replace(
                 record_to_conversation({**r, "conversation": []}).context, extra={}))}
  elif kind == "conversation_pairs":
    yield from _pairs(split, max_input_tokens, count_tokens)
  else:
    raise ValueError(f"unknown task kind {kind!r}; expected one of {KINDS}")


def _pairs(split: str, max_input_tokens, count_tokens) -> Iterator[dict]:
  """Contexts are a function of (seed, index), so two datasets with shuffled strategy draws pair up by index."""
  from mtpo_jax.envs.negotiation.generator import record_to_conversation
  from mtpo_jax.envs.negotiation.reward import sale
  from mtpo_jax.oracles.bradley_terry import BradleyTerryRewardJudge
  from mtpo_jax.envs.negotiation.seller import STRATEGIES
  a_records = _records(split)
  b_records = _records(split, tuple(reversed(STRATEGIES)))
  judge = BradleyTerryRewardJudge(lambda c: sale(c)[1], scale=PRICE_SCALE)
  probs = judge.preference([record_to_conversation(r) for r in a_records],
                           [record_to_conversation(r) for r in b_records])
  for a, b, p in zip(a_records, b_records, probs):
    ta = [(t["role"], t["text"]) for t in a["conversation"]]
    tb = [(t["role"], t["text"]) for t in b["conversation"]]
    header = _header(a, False)
    half = None if max_input_tokens is None else (max_input_tokens - count_tokens(header)) // 2
    text_a, tra = fmt.fit_history("A:", ta, "", half, count_tokens)
    text_b, trb = fmt.fit_history("B:", tb, "", half, count_tokens)
    yield {"inputs": f"{header}\n{text_a}\n{text_b}", "targets": f"{float(p):.4f}",
           "id": f"{a['id']}|pair", "truncated": tra or trb}
