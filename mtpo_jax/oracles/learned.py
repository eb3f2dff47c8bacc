"""Learned judges: a Bradley-Terry reward model and a direct preference model, behind the Judge protocol.

    LearnedRewardJudge       P(a > b) = sigmoid(r(a) - r(b))                     (digest A5/A7: RLHF's BT RM)
    LearnedPreferenceJudge   P(a > b) = symmetrize(P_m(a, b), P_m(b, a))          (digest A7/A9: MTPO's judge,
                                                                                   joint input)
    LearnedPairPreferenceJudge  P(a > b) = sigmoid(g(f(a), f(b)) - g(f(b), f(a)))  (the siamese model)

Both are `T5Value` networks trained by training/scorer_trainer.py. Conversations are rendered here, by the same
functions the trainer uses (`reward_model_inputs`, `preference_model_inputs`), so a judge sees exactly the text
its model was trained on. Scoring goes through one jitted forward: distinct texts only, in sorted order, in
chunks padded to power-of-two (batch, length) buckets. Because equal inputs get bit-identical scores, both
judges are exactly antisymmetric, P(a, b) + P(b, a) = 1, and P(a, a) = 1/2.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mtpo_jax.text import dialogue_format as fmt
from mtpo_jax.text.packing import pack_ids
from mtpo_jax.text.vocabulary import DEFAULT_SPM_PATH, PAD_ID, Vocabulary
from mtpo_jax.envs.education.convert import RELEASED_ROLE, ROLE_NAMES
from mtpo_jax.models.config import T5Config
from mtpo_jax.models.decoding import bucket
from mtpo_jax.models.preference import T5PairPreference
from mtpo_jax.models.value import T5Value
from mtpo_jax.oracles.base import check_same_contexts, symmetrize
from mtpo_jax.oracles.rubric import preference_from_scores
from mtpo_jax.types import Conversation

SCORER_FILE = "scorer.json"  # written into a scorer run's MODEL_DIR: kind, model config, input length, vocabulary
EOS_RESERVE = 2  # tokens kept free below input_length: the EOS, and slack for per-line vs whole-text tokenisation


# RENDERING (shared with the trainer)

def conversation_turns(conversation: Conversation) -> list[fmt.RoleText]:
  """(Role, text) with the data's role spelling, as education_examples.record_turns gives for its record."""
  names = {**RELEASED_ROLE, **conversation.context.extra.get(ROLE_NAMES, {})}
  return [(names.get(t.role, t.role).capitalize(), t.text) for t in conversation.turns]


def _header(conversation: Conversation) -> str:
  try:
    return fmt.context_header(conversation.context.visible)
  except ValueError as e:
    raise ValueError(f"context {conversation.context.context_id!r}: {e}") from None


def token_counter(vocab: Vocabulary) -> fmt.TokenCounter:
  return lambda text: len(vocab.encode(text))


def reward_model_inputs(conversations: Sequence[Conversation], vocab: Vocabulary, input_length: int) -> list[str]:
  """"<header>\\n<turns>" per conversation (header "topic: ..." or "car: ..."), oldest turns dropped to fit
  `input_length` tokens."""
  count = token_counter(vocab)
  return [fmt.conversation_input(_header(c), conversation_turns(c), input_length - EOS_RESERVE, count)[0]
          for c in conversations]


def preference_model_inputs(a: Sequence[Conversation], b: Sequence[Conversation], vocab: Vocabulary,
                            input_length: int) -> list[str]:
  """"<header>\\nA:\\n<a>\\nB:\\n<b>" per pair (dialogue_format.pair_input), each side half the budget."""
  count = token_counter(vocab)
  return [fmt.pair_input(_header(x), conversation_turns(x), conversation_turns(y), input_length - EOS_RESERVE,
                         count)[0] for x, y in zip(a, b)]


def tokenize(texts: Sequence[str], vocab: Vocabulary, input_length: int) -> np.ndarray:
  """[N, input_length] int32, EOS-terminated, right-padded; overflow cut from the left (oldest text)."""
  return pack_ids(vocab.encode_batch(list(texts)), input_length, True, True)


# CONFIG FILE

def config_to_json(config: T5Config) -> dict[str, Any]:
  return {k: (jnp.dtype(v).name if k in ("dtype", "param_dtype") else v) for k, v in vars(config).items()}


def config_from_json(d: dict[str, Any]) -> T5Config:
  d = dict(d)
  for k in ("dtype", "param_dtype"):
    if k in d:
      d[k] = jnp.dtype(d[k]).type
  return T5Config(**d)


def read_scorer_file(model_dir: str | None) -> dict[str, Any]:
  if not model_dir:
    raise ValueError("no scorer directory given (Gin: JUDGE_DIR = a train_scorer "
                     "MODEL_DIR)")
  path = os.path.join(model_dir, SCORER_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: is {model_dir} a reward/preference model run directory?")
  with open(path) as f:
    return json.load(f)


# SCORING

def _forward(model: T5Value, params: Any, ids: jax.Array) -> jax.Array:
  return model.apply({"params": params}, ids, deterministic=True)


@functools.lru_cache(maxsize=None)
def _jitted_forward(config: T5Config):
  """One jitted forward per model config, shared by every judge of that config (compiled once per bucket)."""
  return jax.jit(functools.partial(_forward, T5Value(config)))


class _Scorer:
  """Scalar head output for texts: one jitted forward over (batch, length) buckets."""

  def __init__(self, config: T5Config, params: Any, vocab: Vocabulary, input_length: int, max_batch: int = 64):
    vocab.check_fits(config.vocab_size, "the scorer")
    self.config, self.vocab, self.input_length, self.max_batch = config, vocab, input_length, max_batch
    self.params = jax.device_put(params)
    self._forward = _jitted_forward(config)

  def scores(self, texts: Sequence[str]) -> np.ndarray:
    """[N] float64 (or [N, ...] for a vector-valued forward). Distinct texts are scored once, in sorted order, so equal inputs get equal scores and the
    result does not depend on the order in which pairs are asked."""
    unique = sorted(set(texts))
    ids = tokenize(unique, self.vocab, self.input_length)
    chunks = []
    for lo in range(0, len(unique), self.max_batch):
      rows = ids[lo:lo + self.max_batch]
      length = min(self.input_length, bucket(int((rows != PAD_ID).sum(1).max()), 16))
      padded = np.full((bucket(len(rows), 8), length), PAD_ID, np.int32)
      padded[:len(rows)] = rows[:, :length]
      chunks.append(np.asarray(self._forward(self.params, padded), np.float64)[:len(rows)])
    out = np.concatenate(chunks)
    where = {t: i for i, t in enumerate(unique)}
    return out[[where[t] for t in texts]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
  return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def antisymmetric_preference(p_ab: np.ndarray, p_ba: np.ndarray) -> np.ndarray:
  """`symmetrize(p_ab, p_ba)` evaluated from the larger answer's side, so that swapping the two answers gives
  exactly 1 - P in floating point (1 - q is exact for q in [1/2, 1]) and equal answers give exactly 1/2."""
  p_ab, p_ba = np.asarray(p_ab, np.float64), np.asarray(p_ba, np.float64)
  q = np.maximum(symmetrize(np.maximum(p_ab, p_ba), np.minimum(p_ab, p_ba)), 0.5)
  return np.where(p_ab > p_ba, q, np.where(p_ab < p_ba, 1.0 - q, 0.5))


class LearnedRewardJudge:
  """Judge from a BT reward model: P(a > b) = sigmoid(r(a) - r(b)); `rewards` for multi-turn RLHF."""

  kind = "reward"

  def __init__(self, config: T5Config, params: Any, vocab: Vocabulary, input_length: int, max_batch: int = 64):
    self._scorer = _Scorer(config, params, vocab, input_length, max_batch)

  def rewards(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 r(x) of each (finished or partial) conversation."""
    s = self._scorer
    return s.scores(reward_model_inputs(list(conversations), s.vocab, s.input_length))

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i])."""
    check_same_contexts(a, b)
    r = self.rewards(list(a) + list(b))
    return preference_from_scores(r[:len(a)], r[len(a):])

  @classmethod
  def from_checkpoint(cls, model_dir: str, step: int | None = None, max_batch: int = 64) -> "LearnedRewardJudge":
    return cls(*_load(model_dir, cls.kind, step), max_batch=max_batch)


class LearnedPreferenceJudge:
  """Judge from a direct preference model, queried in both orders and symmetrised (oracles/base.py)."""

  kind = "preference"

  def __init__(self, config: T5Config, params: Any, vocab: Vocabulary, input_length: int, max_batch: int = 64):
    self._scorer = _Scorer(config, params, vocab, input_length, max_batch)

  def raw_preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 sigmoid(logit) of the model on the pair in the given order (not antisymmetric)."""
    s = self._scorer
    return _sigmoid(s.scores(preference_model_inputs(list(a), list(b), s.vocab, s.input_length)))

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i]); exactly antisymmetric."""
    check_same_contexts(a, b)
    a, b, s = list(a), list(b), self._scorer
    texts = preference_model_inputs(a + b, b + a, s.vocab, s.input_length)  # both orders in one scoring call
    p = _sigmoid(s.scores(texts))
    return antisymmetric_preference(p[:len(a)], p[len(a):])

  @classmethod
  def from_checkpoint(cls, model_dir: str, step: int | None = None,
                      max_batch: int = 64) -> "LearnedPreferenceJudge":
    return cls(*_load(model_dir, cls.kind, step), max_batch=max_batch)


@functools.lru_cache(maxsize=None)
def _jitted_features(config: T5Config, hidden_dim: int):
  model = T5PairPreference(config, hidden_dim)
  return jax.jit(lambda params, ids: model.apply({"params": params}, ids, method=T5PairPreference.features))


def _gelu(x: np.ndarray) -> np.ndarray:
  """jax.nn.gelu's tanh approximation, in numpy."""
  return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


class LearnedPairPreferenceJudge:
  """Judge from the siamese preference model (models/preference.py): the backbone's feature of every distinct
  conversation once (the same jitted, bucketed scoring as the other judges), then the pair head in float64 numpy,
  so P(a, b) + P(b, a) = 1 and P(a, a) = 1/2 hold exactly."""

  kind = "pair_preference"

  def __init__(self, config: T5Config, params: Any, vocab: Vocabulary, input_length: int, max_batch: int = 64):
    self._scorer = _Scorer(config, params, vocab, input_length, max_batch)
    self._scorer._forward = _jitted_features(config, int(np.shape(params["pair_in"])[1]))
    self._head = {k: np.asarray(params[k], np.float64) for k in ("pair_in", "pair_bias", "pair_out")}

  def features(self, conversations: Sequence[Conversation]) -> np.ndarray:
    """[N, d_model] float64 backbone features of (finished or partial) conversations."""
    s = self._scorer
    return s.scores(reward_model_inputs(list(conversations), s.vocab, s.input_length))

  def _g(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h = self._head
    return _gelu(np.concatenate([u, v, u * v], axis=-1) @ h["pair_in"] + h["pair_bias"]) @ h["pair_out"]

  def preference(self, a: Sequence[Conversation], b: Sequence[Conversation]) -> np.ndarray:
    """[batch] float64 P(a[i] preferred to b[i]) = sigmoid(g(f_a, f_b) - g(f_b, f_a)); exactly antisymmetric."""
    check_same_contexts(a, b)
    f = self.features(list(a) + list(b))
    f_a, f_b = f[:len(a)], f[len(a):]
    return preference_from_scores(self._g(f_a, f_b), self._g(f_b, f_a))

  @classmethod
  def from_checkpoint(cls, model_dir: str, step: int | None = None,
                      max_batch: int = 64) -> "LearnedPairPreferenceJudge":
    return cls(*_load(model_dir, cls.kind, step), max_batch=max_batch)


def _load(model_dir: str, kind: str, step: int | None) -> tuple[T5Config, Any, Vocabulary, int]:
  from mtpo_jax.checkpoints import load_params  # orbax stays out of the judges' import path
  meta = read_scorer_file(model_dir)
  if meta["kind"] != kind:
    raise ValueError(f"{model_dir} holds a {meta['kind']} model, not a {kind} model")
  vocab = Vocabulary(meta.get("vocab_path") or DEFAULT_SPM_PATH)
  params = load_params(os.path.join(model_dir, "checkpoints"), step)
  return config_from_json(meta["model_config"]), params, vocab, int(meta["input_length"])


def load_reward_judge(model_dir: str, step: int | None = None, max_batch: int = 64) -> LearnedRewardJudge:
  """`LearnedRewardJudge.from_checkpoint` (Gin: @learned_reward_judge())."""
  return LearnedRewardJudge.from_checkpoint(model_dir, step, max_batch)


def load_preference_judge(model_dir: str, step: int | None = None,
                          max_batch: int = 64) -> LearnedPreferenceJudge | LearnedPairPreferenceJudge:
  """The preference judge a preference-model run wrote, joint or siamese (Gin: @learned_preference_judge())."""
  if read_scorer_file(model_dir)["kind"] == LearnedPairPreferenceJudge.kind:
    return LearnedPairPreferenceJudge.from_checkpoint(model_dir, step, max_batch)
  return LearnedPreferenceJudge.from_checkpoint(model_dir, step, max_batch)
