"""The SentencePiece vocabulary (text/vocabulary.py): trained deterministically, written atomically."""

import os

import pytest

from mtpo_jax.text import vocabulary as voc

TEXTS = [f"teacher {i}: the cell divides and the student asks why {i % 7}" for i in range(200)]


def test_training_is_deterministic_and_fits_check(tmp_path):
  a = voc.Vocabulary(voc.train_sentencepiece(TEXTS, str(tmp_path / "a" / "spm"), vocab_size=64))
  b = voc.Vocabulary(voc.train_sentencepiece(TEXTS, str(tmp_path / "b" / "spm"), vocab_size=64))
  assert a.encode_batch(TEXTS[:3]) == b.encode_batch(TEXTS[:3])
  assert os.listdir(tmp_path / "a") == ["spm.model"]  # no temporary file left behind
  a.check_fits(a.vocab_size)


def test_a_write_that_dies_before_the_rename_leaves_no_model(tmp_path, monkeypatch):
  def killed(src, dst):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(voc.os, "replace", killed)
  with pytest.raises(OSError, match="No space left"):
    voc.train_sentencepiece(TEXTS, str(tmp_path / "spm"), vocab_size=64)
  assert not os.path.exists(tmp_path / "spm.model")  # never a truncated model under the real name
