"""Where the learned judges' training pairs come from (papers/digest.md A7, A8, A9 step 3).

Every source gives (conversation a, conversation b, p = the judge's P(a > b)) on one context, the pairs
training/scorer_trainer.py fits a BT reward model or a direct preference model to:

  generated           a generated record vs its replay by another teacher (scripted teachers; no policy needed)
  policy              two conversations per context sampled from a policy (the SFT teacher): the paper's offline
                      preference data, on the policy's own distribution (A7, A9); for RLHF-multi and MTPO
  single_turn_reward  the policy plays a conversation; at an agent turn h drawn uniformly from those it has, the
                      state x_h (waiting for the agent) gets two fresh policy turns y1, y2; the pair is
                      (x_h + y1, x_h + y2), labelled by the judge on those two partial conversations, the
                      programmatic analogue of the paper's modified prompt "which response leads to a better
                      interaction if the conversation continued" (A8; use RubricJudge(partial=True))
  single_turn_value   the same pairs, labelled by the conversation-level judge on the two alternatives each
                      continued to the end by the same policy: the paper's Monte-Carlo single-turn value (A8)

A single-turn pair stops at the candidate turn: the student's reply to it is not part of the pair (the paper's
judge sees "the conversation so far and the two candidate responses"), so a and b differ in exactly their last
(agent) turn. Their `done` is set only when the candidate itself ends the conversation.

Sampling keys (rollout.conversation_key) for a given (seed, split): iteration 0 plays the conversations (two
copies per context for `policy`, one for the single-turn sources), iteration 1 samples the two alternatives,
iteration 2 + k continues the alternatives of copy k. Contexts come from registry.contexts("education", n,
seed, split), whose splits never share a context; the turn h of context i is drawn by
`rollout.logged_states` with np.random.default_rng([seed, crc32(split)]).

Sampled pairs are cached as JSON lines (`write_pairs` / `read_pairs`): a header line naming the source and its
settings, then one {"a", "b", "p"} per pair with the conversations and their contexts. A resumed run reads the
cache and relabels nothing; a cache written with other settings, or unreadable, is an error naming the file.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import zlib
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from mtpo_jax import atomic_files, run_config
from mtpo_jax.checkpoints import load_policy
from mtpo_jax.envs import registry
from mtpo_jax.envs.education import generator
from mtpo_jax.envs.education.convert import record_to_conversation
from mtpo_jax.envs.registry import ConversationSettings
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import Sampler
from mtpo_jax.models.t5 import T5
from mtpo_jax.oracles.base import Judge
from mtpo_jax.oracles.rubric import RubricJudge
from mtpo_jax.text.vocabulary import Vocabulary
from mtpo_jax.training import rollout as ro
from mtpo_jax.types import Context, Conversation, Turn

Pair = tuple[Conversation, Conversation, float]  # (conversation a, conversation b, judge's P(a > b))
PAIR_SOURCES = ("generated", "policy", "single_turn_reward", "single_turn_value")
SAMPLED = PAIR_SOURCES[1:]  # the sources that need a policy checkpoint (and are cached)
SINGLE_TURN_ENV = "education"  # the paper builds single-turn data for Education Dialogue only (digest A8)


class PairCacheError(ValueError):
  """A pair cache file is unreadable or was written with other settings."""


@dataclasses.dataclass(frozen=True)
class PairData:
  """A judge's training data: `num_train` and `num_eval` pairs of `source` (PAIR_SOURCES) from the disjoint
  "train" and "eval" streams of `seed`, labelled by `judge` (None: `default_judge(source)`, the ground truth).
  The sampled sources play `policy_checkpoint` (an SFT run's checkpoints directory, the scorer's T5Config) as
  `conversation` says; `conversation.vocab_path` is also the vocabulary the scorer reads conversations with."""
  source: str = "generated"
  num_train: int = 4000
  num_eval: int = 512
  seed: int = 0
  judge: Judge | None = None
  policy_checkpoint: str | None = None
  conversation: ConversationSettings = ConversationSettings()

  def __post_init__(self):
    check_source(self.source, self.policy_checkpoint)
    if self.conversation.env_name != SINGLE_TURN_ENV and self.source not in ("generated", "policy"):
      raise ValueError(f"pair_source {self.source!r} exists for {SINGLE_TURN_ENV!r} only; "
                       f"{self.conversation.env_name!r} pairs come from pair_source 'policy'")
    if self.num_train < 1 or self.num_eval < 1:
      raise ValueError(f"PairData needs at least one train and one eval pair, got {self.num_train}, {self.num_eval}")

  def labeller(self) -> Judge:
    return self.judge if self.judge is not None else default_judge(self.source)


def check_source(pair_source: str, policy_checkpoint: str | None) -> None:
  if pair_source not in PAIR_SOURCES:
    raise ValueError(f"unknown pair_source {pair_source!r}; expected one of {PAIR_SOURCES}")
  if pair_source in SAMPLED and not policy_checkpoint:
    raise ValueError(f"pair_source {pair_source!r} samples from a policy: set policy_checkpoint to the SFT run's "
                     "checkpoints directory (Gin: SFT_CHECKPOINT)")


def default_judge(pair_source: str) -> Judge:
  """The ground truth; for single_turn_reward its partial-conversation mode (oracles/rubric.py)."""
  return RubricJudge(partial=pair_source == "single_turn_reward")


# SOURCES

def judged_pairs(num_pairs: int, seed: int, split: str, judge: Judge | None = None) -> list[Pair]:
  """Records of `split` and their replays with another teacher, labelled P(record better) by `judge`."""
  judge = judge or RubricJudge()
  records = generator.generate(num_pairs, seed, split)
  alts = [generator.replay(r, f"{split}:{i}") for i, r in enumerate(records)]
  a = [record_to_conversation(r, f"{split}-{seed}-{i}") for i, r in enumerate(records)]
  b = [record_to_conversation(r, f"{split}-{seed}-{i}") for i, r in enumerate(alts)]
  return list(zip(a, b, (float(p) for p in judge.preference(a, b))))


def make_policy(params: Any, policy_config: T5Config, settings: ConversationSettings,
                vocab: Vocabulary | None = None) -> ro.TurnPolicy:
  """A TurnPolicy sampling whole turns from `params` (host arrays, placed on the default device once) as
  `settings` says."""
  sampler = Sampler(T5(policy_config), settings.sampling())
  return ro.TurnPolicy(sampler, jax.device_put(params), vocab or settings.vocabulary(), settings.input_length)


def _environment(policy: ro.TurnPolicy, settings: ConversationSettings, seed: int):
  return registry.make_environment(settings, seed, policy_config=policy.sampler.model.config, vocab=policy.vocab)


def sample_policy_pairs(policy: ro.TurnPolicy, settings: ConversationSettings, num_pairs: int, seed: int,
                        split: str, judge: Judge) -> list[Pair]:
  """Two conversations per context of `split` from `policy`, played as `settings` says, labelled P(first
  better) by `judge`."""
  played = ro.collect_conversations(_environment(policy, settings, seed), policy,
                                    registry.contexts(settings.env_name, num_pairs, seed, split), copies=2, seed=seed)
  a, b = played[0::2], played[1::2]
  return list(zip(a, b, (float(p) for p in judge.preference(a, b))))


class SingleTurnSample(NamedTuple):
  """states: the logged x_h; a, b: x_h + y1, x_h + y2; final_a, final_b: their continuations to the end
  (kind "value" only, else None); p: the labels [N] float64."""
  states: list[Conversation]
  a: list[Conversation]
  b: list[Conversation]
  final_a: list[Conversation] | None
  final_b: list[Conversation] | None
  p: np.ndarray


def _finish(env, policy: ro.TurnPolicy, conversations: Sequence[Conversation], seed: int,
            iteration: int) -> list[Conversation]:
  """Each unfinished conversation continued to its end by `policy`; finished ones as they are."""
  live = [c for c in conversations if not c.done]
  if not live:
    return list(conversations)
  finished = iter(ro.collect_conversations(env, policy, starts=live, seed=seed, iteration=iteration))
  return [c if c.done else next(finished) for c in conversations]


def sample_single_turn(policy: ro.TurnPolicy, settings: ConversationSettings, num_pairs: int, seed: int,
                       split: str, judge: Judge, kind: str) -> SingleTurnSample:
  """Single-turn pairs (module docstring): two alternative agent turns at a logged state of each conversation."""
  if kind not in ("reward", "value"):
    raise ValueError(f"unknown single-turn kind {kind!r}; expected 'reward' or 'value'")
  env = _environment(policy, settings, seed)
  # PLAY, THEN LOG ONE STATE PER CONVERSATION
  played = ro.collect_conversations(env, policy, registry.contexts(SINGLE_TURN_ENV, num_pairs, seed, split),
                                    seed=seed)
  states = ro.logged_states(played, np.random.default_rng([seed, zlib.crc32(split.encode())]))
  # TWO ALTERNATIVE AGENT TURNS PER STATE
  alts = ro.collect_conversations(env, policy, starts=states, copies=2, seed=seed, iteration=1,
                                  max_new_agent_turns=1)
  a = [ro.through_last_agent_turn(c) for c in alts[0::2]]
  b = [ro.through_last_agent_turn(c) for c in alts[1::2]]
  if kind == "reward":
    return SingleTurnSample(states, a, b, None, None, judge.preference(a, b))
  # MONTE-CARLO VALUE: continue each alternative (student reply included) to the end, judge the final states
  final_a, final_b = (_finish(env, policy, alts[k::2], seed, 2 + k) for k in (0, 1))
  return SingleTurnSample(states, a, b, final_a, final_b, judge.preference(final_a, final_b))


def policy_from_checkpoint(policy_checkpoint: str, policy_config: T5Config,
                           settings: ConversationSettings) -> ro.TurnPolicy:
  """`make_policy` of a policy run's checkpoint (checkpoints.load_policy: CheckpointError if it is missing,
  ValueError if it does not match `policy_config`)."""
  return make_policy(load_policy(policy_checkpoint, policy_config).params, policy_config, settings)


def lazy_policy(policy_checkpoint: str, policy_config: T5Config,
                settings: ConversationSettings) -> Callable[[], ro.TurnPolicy]:
  """A callable that loads the policy on its first call and returns the same one (one compile) afterwards."""
  return functools.lru_cache(maxsize=1)(functools.partial(policy_from_checkpoint, policy_checkpoint, policy_config,
                                                          settings))


# CACHE

def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
  """A JSON-ready dict of a conversation and its full context (id, visible, hidden, extra); exact round trip for
  JSON-valued contexts. (envs/education/convert.py's record format keeps neither the id nor `done`.)"""
  ctx = conversation.context
  return {"context": {"context_id": ctx.context_id, "visible": dict(ctx.visible), "hidden": dict(ctx.hidden),
                      "extra": dict(ctx.extra)},
          "turns": [[t.role, t.text, t.is_agent] for t in conversation.turns], "done": conversation.done}


def conversation_from_dict(d: dict[str, Any]) -> Conversation:
  c = d["context"]
  context = Context(c["context_id"], c["visible"], c["hidden"], c["extra"])
  turns = tuple(Turn(str(role), str(text), bool(agent)) for role, text, agent in d["turns"])
  return Conversation(context, turns, bool(d["done"]))


def write_pairs(path: str, header: dict[str, Any], pairs: Sequence[Pair]) -> None:
  """Header line, then one {"a", "b", "p"} line per pair; written to a temporary file and renamed."""
  run_config.accept(os.path.dirname(path))  # the run's first file: its configuration is accepted
  lines = [json.dumps({"header": header, "num_pairs": len(pairs)}) + "\n"]
  lines += [json.dumps({"a": conversation_to_dict(a), "b": conversation_to_dict(b), "p": float(p)}) + "\n"
            for a, b, p in pairs]
  atomic_files.write_text(path, "".join(lines))


def read_pairs(path: str) -> tuple[dict[str, Any], list[Pair]]:
  """(header, pairs) of a cache file; PairCacheError naming the file if it is unreadable or incomplete."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
    top = json.loads(lines[0])
    rows = [json.loads(line) for line in lines[1:]]
    pairs = [(conversation_from_dict(r["a"]), conversation_from_dict(r["b"]), float(r["p"])) for r in rows]
    header, count = top["header"], int(top["num_pairs"])
  except (OSError, IndexError, KeyError, TypeError, ValueError) as e:
    raise PairCacheError(f"pair cache {path} is corrupt ({type(e).__name__}: {e}); delete it to resample") from e
  if len(pairs) != count:
    raise PairCacheError(f"pair cache {path} holds {len(pairs)} pairs, its header says {count}; delete it to "
                         "resample")
  return header, pairs


def _describe(judge: Judge) -> dict[str, Any]:
  """The judge's class and scalar settings (what the cache header records about the labels)."""
  scalars = {k: v for k, v in sorted(vars(judge).items())
             if not k.startswith("_") and isinstance(v, (bool, int, float, str))}
  return {"class": type(judge).__name__, **scalars}


def load_or_sample(path: str, header: dict[str, Any], sample: Callable[[], list[Pair]]) -> list[Pair]:
  """The cached pairs if `path` exists (and was written with `header`), else `sample()`, written to `path`."""
  if os.path.exists(path):
    saved, pairs = read_pairs(path)
    if saved != json.loads(json.dumps(header)):
      raise PairCacheError(f"pair cache {path} was written with {saved}, this run asks for {header}; use a new "
                           "MODEL_DIR or delete the file to resample")
    return pairs
  pairs = sample()
  if jax.process_index() == 0:
    write_pairs(path, header, pairs)
  return pairs


def source_pairs(data: PairData, split: str, num_pairs: int, *, policy: Callable[[], ro.TurnPolicy] | None = None,
                 policy_config: T5Config | None = None, cache_dir: str | None = None) -> list[Pair]:
  """`num_pairs` pairs of `split` from `data.source`, labelled by `data.labeller()`; the sampled sources
  read/write `cache_dir`/pairs_{split}.jsonl (when given) and call `policy()` (default: `lazy_policy` of
  `data.policy_checkpoint` with `policy_config`) only when they must sample."""
  judge = data.labeller()
  if data.source == "generated":
    return judged_pairs(num_pairs, data.seed, split, judge)
  if policy is None:
    if policy_config is None:
      raise ValueError("sampling pairs needs the policy's T5Config")
    policy = lazy_policy(data.policy_checkpoint, policy_config, data.conversation)
  header = {"pair_source": data.source, "split": split, "num_pairs": num_pairs, "seed": data.seed,
            "policy_checkpoint": data.policy_checkpoint, "sampling": dataclasses.asdict(data.conversation),
            "judge": _describe(judge)}

  def sample() -> list[Pair]:
    if data.source == "policy":
      return sample_policy_pairs(policy(), data.conversation, num_pairs, data.seed, split, judge)
    s = sample_single_turn(policy(), data.conversation, num_pairs, data.seed, split, judge,
                           data.source.rsplit("_", 1)[1])
    return list(zip(s.a, s.b, (float(p) for p in s.p)))

  if cache_dir is None:
    return sample()
  return load_or_sample(os.path.join(cache_dir, f"pairs_{split}.jsonl"), header, sample)
