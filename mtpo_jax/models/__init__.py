"""T5 policy and value models, sampling and Hugging Face interop."""

from mtpo_jax.models.config import T5Config
from mtpo_jax.models.hf_import import export_hf_t5, load_hf_t5
from mtpo_jax.models.t5 import T5
from mtpo_jax.models.value import T5Value

__all__ = ["T5", "T5Config", "T5Value", "export_hf_t5", "load_hf_t5"]
