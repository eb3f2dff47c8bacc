"""Processes that read no task never import TensorFlow: the entrypoint with every configurable registered, the
RL loops, Iterative PPO, evaluation and the pipeline import it only when a trainer reads a SeqIO task."""

import subprocess
import sys


def test_the_entrypoint_and_non_reading_jobs_do_not_import_tensorflow():
  code = ("import sys; from mtpo_jax import gin_registry, main; gin_registry.register(); "
          "import mtpo_jax.training.rl_trainer, mtpo_jax.training.iterative_ppo, mtpo_jax.evaluation.evaluate, "
          "mtpo_jax.pipeline.run, mtpo_jax.training.sft_trainer, mtpo_jax.training.scorer_trainer; "
          "print(sorted(m for m in ('tensorflow', 'seqio', 'tensorflow_datasets') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]", out.stdout
