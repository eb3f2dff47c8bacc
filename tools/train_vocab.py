"""Trains the project's SentencePiece vocabulary on the generated dialogue corpora (T5 ids: pad 0, eos 1, unk 2).

    python tools/train_vocab.py --out mtpo_jax/text/assets/dialogue_spm --vocab_size 4096

The committed `mtpo_jax/text/assets/dialogue_spm.model` was made by exactly that command. The corpus is every
rendered model input and target of generated Education Dialogue and negotiation conversations (so headers such
as "topic:" and "Teacher:" are in it), deterministic by seed; training uses one thread and is deterministic.
"""

from __future__ import annotations

import argparse
import os
import time

from mtpo_jax.text.vocabulary import Vocabulary, train_sentencepiece
from mtpo_jax.pipeline.data_stages import corpus_texts


def corpus(num_education: int, num_negotiation: int, seed: int) -> list[str]:
  from mtpo_jax.envs.education import generator as edu
  from mtpo_jax.envs.negotiation import generator as neg
  return corpus_texts(edu.generate(num_education, seed, "train"), neg.generate_dataset(num_negotiation, seed))


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--out", default="mtpo_jax/text/assets/dialogue_spm", help="model prefix (writes PREFIX.model)")
  ap.add_argument("--vocab_size", type=int, default=4096)
  ap.add_argument("--num_education", type=int, default=3000)
  ap.add_argument("--num_negotiation", type=int, default=1000)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args()
  t = time.time()
  texts = corpus(args.num_education, args.num_negotiation, args.seed)
  path = train_sentencepiece(texts, args.out, args.vocab_size)
  vocab = Vocabulary(path)
  tokens = sum(len(vocab.encode(s)) for s in texts[:2000])
  words = sum(len(s.split()) for s in texts[:2000])
  print(f"wrote {path}: {vocab.vocab_size} pieces from {len(texts)} texts in {time.time() - t:.1f}s; "
        f"{tokens / words:.2f} tokens per word; {os.path.getsize(path) / 1024:.0f} KiB")


if __name__ == "__main__":
  main()
