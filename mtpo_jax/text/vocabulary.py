"""SentencePiece vocabulary with T5 conventions (pad 0, eos 1, unk 2), and a trainer for it."""

from __future__ import annotations

import io
import os
from typing import Iterable, Sequence

import sentencepiece as spm

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
# Trained by tools/train_vocab.py on the generated Education Dialogue and negotiation corpora (committed).
DEFAULT_SPM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "dialogue_spm.model")


class Vocabulary:
  """Encodes text to ids (no EOS appended) and decodes ids, stopping at the first EOS."""

  def __init__(self, model_path: str):
    if not os.path.exists(model_path):
      raise FileNotFoundError(f"SentencePiece model {model_path} does not exist")
    self.model_path = model_path
    try:
      self._sp = spm.SentencePieceProcessor(model_file=model_path)
    except (RuntimeError, OSError) as e:  # sentencepiece's own message is "INTERNAL: could not parse ModelProto"
      raise ValueError(f"{model_path} is not a readable SentencePiece model ({e})") from None
    if (self._sp.pad_id(), self._sp.eos_id(), self._sp.unk_id()) != (PAD_ID, EOS_ID, UNK_ID):
      raise ValueError(f"{model_path}: expected pad/eos/unk ids 0/1/2 (T5 convention), got "
                       f"{self._sp.pad_id()}/{self._sp.eos_id()}/{self._sp.unk_id()}")

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def check_fits(self, embedding_rows: int, what: str = "the model") -> None:
    """ValueError unless every piece has an embedding row (`embedding_rows`: a T5Config.vocab_size)."""
    if self.vocab_size > embedding_rows:
      raise ValueError(f"vocabulary {self.model_path} has {self.vocab_size} pieces but {what}'s "
                       f"T5Config.vocab_size is {embedding_rows}")

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return self._sp.encode(list(texts))

  def decode(self, ids: Iterable[int]) -> str:
    """Ids past the vocabulary (a model's embedding table is usually padded larger) decode as unk."""
    out = []
    size = self.vocab_size
    for i in ids:
      i = int(i)
      if i == EOS_ID:
        break
      if i != PAD_ID:
        out.append(i if 0 <= i < size else UNK_ID)
    return self._sp.decode(out)


def train_sentencepiece(texts: Iterable[str], model_prefix: str, vocab_size: int = 512,
                        model_type: str = "unigram") -> str:
  """Trains a SentencePiece model on `texts`; returns the .model path. Deterministic (one thread)."""
  os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
      pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, hard_vocab_limit=False, num_threads=1,
      character_coverage=1.0, shuffle_input_sentence=False, minloglevel=2)
  path = model_prefix + ".model"
  with open(path + ".tmp", "wb") as f:  # written whole, then renamed: a killed run never leaves half a model
    f.write(model.getvalue())
  os.replace(path + ".tmp", path)
  return path
