"""Explicit-reward negotiation environment (the paper's Car Dealer experiment; papers/digest.md A11).

A seller (the agent) tries to sell a used car to a scripted buyer with a hidden budget, wanted features and
personality; the reward is the sale price. See docs/negotiation.md.
"""

from mtpo_jax.envs.negotiation.buyer import ScriptedBuyer, buyer_system_prompt, decide
from mtpo_jax.envs.negotiation.catalog import FEATURES, PERSONALITIES, sample_contexts
from mtpo_jax.envs.negotiation.env import NegotiationEnv, rollout
from mtpo_jax.envs.negotiation.generator import (conversation_to_record, generate_dataset, load_json,
                                                 record_to_conversation, save_json)
from mtpo_jax.envs.negotiation.prices import format_price, last_price, parse_prices
from mtpo_jax.envs.negotiation.reward import is_acceptance, outcome, sale_price
from mtpo_jax.envs.negotiation.seller import STRATEGIES, ScriptedSeller

__all__ = ["FEATURES", "PERSONALITIES", "STRATEGIES", "NegotiationEnv", "ScriptedBuyer", "ScriptedSeller",
           "buyer_system_prompt", "conversation_to_record", "decide", "format_price", "generate_dataset", "is_acceptance", "last_price",
           "load_json", "outcome", "parse_prices", "record_to_conversation", "rollout", "sale_price",
           "sample_contexts", "save_json"]
