"""The pipeline's first two stages, in process: write the generated data in the released formats, then train the
SentencePiece vocabulary every later stage uses (papers/digest.md A9 step 1; the generator stands in for the
paper's Gemini-written conversations, see docs/education_dialogue.md)."""

from __future__ import annotations

import os
import time
from typing import Iterable

from mtpo_jax.data import education_examples as ex
from mtpo_jax.data import negotiation_examples as nx


def corpus_texts(education_records: Iterable[dict], negotiation_records: Iterable[dict]) -> list[str]:
  """Every rendered model input and target of the conversations (headers such as "topic:", "Teacher:" and
  "car:" included), the text a dialogue vocabulary must cover."""
  texts: list[str] = []
  for record in education_records:
    for e in ex.teacher_sft_examples(record):
      texts += [e["inputs"], e["targets"]]
    bg = record["background_info"]
    texts.append(f"topic: {bg['topic']} | learns best: {bg['student_prefrences']} | reacts: {bg['student_reactions']}")
  for record in negotiation_records:
    texts += [f"{t['role']}: {t['text']}" for t in record["conversation"]]
    texts.append(" ".join(f"{k} {v}" for k, v in sorted(record["background_info"]["car"].items())))
  return texts


def write_data(out_dir: str, seed: int, education_train: int, education_eval: int, negotiation_train: int,
               negotiation_eval: int) -> dict:
  """Education Dialogue in the released JSON format (`conversations_train*.json`, `conversations_eval.json`,
  validated on reading back) and negotiation conversations (`negotiation_{train,eval}.json`)."""
  from mtpo_jax.envs.education import generator as edu
  from mtpo_jax.envs.education import schema
  from mtpo_jax.envs.negotiation import generator as neg
  t0 = time.time()
  paths = edu.write_dataset(os.path.join(out_dir, "education"), seed=seed, num_train=education_train,
                            num_train_files=1, num_eval=education_eval)
  records, report = schema.load_released(paths)  # raises DataError naming any problem
  neg_dir = os.path.join(out_dir, "negotiation")
  nx.write_split(neg_dir, "train", neg.generate_dataset(negotiation_train, seed))
  nx.write_split(neg_dir, "eval", neg.generate_dataset(negotiation_eval, seed + 1))
  return {"education_records": len(records), "education_files": [os.path.basename(p) for p in paths],
          "negotiation_records": negotiation_train + negotiation_eval, "seconds": round(time.time() - t0, 1)}


def train_vocabulary(out_dir: str, data_dir: str, vocab_size: int) -> dict:
  """A SentencePiece model (T5 ids: pad 0, eos 1, unk 2) on the training split's corpus, `out_dir`/spm.model."""
  from mtpo_jax.text.vocabulary import Vocabulary, train_sentencepiece
  from mtpo_jax.envs.negotiation import generator as neg
  t0 = time.time()
  texts = corpus_texts(ex.load_split(os.path.join(data_dir, "education"), "train"),
                       neg.load_json(nx.split_path(os.path.join(data_dir, "negotiation"), "train")))
  path = train_sentencepiece(texts, os.path.join(out_dir, "spm"), vocab_size)
  vocab = Vocabulary(path)
  sample = texts[:2000]
  tokens = sum(len(vocab.encode(s)) for s in sample)
  words = sum(len(s.split()) for s in sample)
  return {"path": path, "pieces": vocab.vocab_size, "texts": len(texts), "tokens_per_word": round(tokens / words, 3),
          "seconds": round(time.time() - t0, 1)}
