"""Generated seller-buyer conversations in a JSON schema analogous to the Education Dialogue data
(papers/digest.md A10), and conversion to and from `mtpo_jax.types.Conversation`.

    {"id": "car-0-000007",
     "background_info": {"car": {...}, "buyer_budget": 24100, "buyer_wanted_features": ["sunroof"],
                         "buyer_personality": "friendly", "seller_strategy": "consultative"},
     "conversation": [{"role": "Seller", "text": "..."}, {"role": "Buyer", "text": "..."}, ...],
     "ground_truth": {"sale": true, "sale_price": 23500.0, "outcome": "sale"}}

`ground_truth` is derived from the text (`reward.sale`, `reward.outcome`), so it is recomputed, not trusted, when
a record is converted back.
"""

from __future__ import annotations

import json
import random
from typing import Any, Sequence

from mtpo_jax.envs.negotiation.catalog import sample_contexts
from mtpo_jax.envs.negotiation.env import NegotiationEnv, rollout
from mtpo_jax.envs.negotiation.reward import outcome, sale
from mtpo_jax.envs.negotiation.seller import STRATEGIES, ScriptedSeller
from mtpo_jax.types import Context, Conversation, Turn

ROLES = {"seller": "Seller", "buyer": "Buyer"}


def generate_dataset(num: int, seed: int = 0, strategies: Sequence[str] = STRATEGIES,
                     max_agent_turns: int = 8) -> list[dict[str, Any]]:
  """`num` records, each a full conversation between a scripted seller (strategy drawn uniformly from
  `strategies`) and the scripted buyer. Deterministic by seed."""
  rng = random.Random(f"strategies-{seed}")
  contexts = [Context(c.context_id, c.visible, c.hidden, {"seller_strategy": rng.choice(list(strategies))})
              for c in sample_contexts(num, seed)]
  env = NegotiationEnv(max_agent_turns=max_agent_turns, seed=seed)
  return [conversation_to_record(c) for c in rollout(env, ScriptedSeller(seed=seed), contexts)]


def conversation_to_record(conversation: Conversation) -> dict[str, Any]:
  """The JSON record of a conversation (any roles other than seller/buyer are rejected)."""
  ctx = conversation.context
  happened, price = sale(conversation)
  turns = []
  for t in conversation.turns:
    if t.role not in ROLES or t.is_agent != (t.role == "seller"):
      raise ValueError(f"{ctx.context_id!r}: turn by {t.role!r} (is_agent={t.is_agent}) is not a seller/buyer turn")
    turns.append({"role": ROLES[t.role], "text": t.text})
  return {"id": ctx.context_id,
          "background_info": {"car": dict(ctx.visible["car"]), "buyer_budget": ctx.hidden["budget"],
                              "buyer_wanted_features": list(ctx.hidden["wanted_features"]),
                              "buyer_personality": ctx.hidden["personality"],
                              "seller_strategy": ctx.extra.get("seller_strategy")},
          "conversation": turns,
          "ground_truth": {"sale": happened, "sale_price": price, "outcome": outcome(conversation)}}


def record_to_conversation(record: dict[str, Any]) -> Conversation:
  """A finished conversation from a record; the seller is the agent."""
  info = record["background_info"]
  extra = {"seller_strategy": info["seller_strategy"]} if info.get("seller_strategy") is not None else {}
  context = Context(record["id"], visible={"car": dict(info["car"])},
                    hidden={"budget": info["buyer_budget"], "wanted_features": list(info["buyer_wanted_features"]),
                            "personality": info["buyer_personality"]},
                    extra=extra)
  inverse = {v: k for k, v in ROLES.items()}
  turns = tuple(Turn(inverse[t["role"]], t["text"], t["role"] == "Seller") for t in record["conversation"])
  return Conversation(context, turns, done=True)


def save_json(records: Sequence[dict[str, Any]], path: str) -> None:
  with open(path, "w") as f:
    json.dump(list(records), f, indent=1)


def load_json(path: str) -> list[dict[str, Any]]:
  with open(path) as f:
    return json.load(f)
