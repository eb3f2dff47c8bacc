"""Float64 execution for the exact tabular solvers, without touching JAX's global x64 flag.

The theorem checks compare quantities to ~1e-12, so every tabular computation runs in float64. Setting
`jax_enable_x64` globally would change the dtypes of every other test in the same pytest process, so instead each
public entry point is wrapped by `exact`: called with concrete inputs it runs a jitted version inside the
`jax.enable_x64(True)` context and returns numpy float64 arrays; called with tracers (from inside another
`exact` function that is being traced) it simply inlines the pure function.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import jax
import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def _has_tracer(tree: Any) -> bool:
  return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def exact(fn: F | None = None, *, static_argnames: tuple[str, ...] = ()) -> Any:
  """Decorator: jit `fn`, run it in float64, and return numpy arrays (or inline it when traced).

  Usage: `@exact` or `@exact(static_argnames=("num_iters",))`. The undecorated function is `wrapper.pure`.
  """

  def decorate(f: F) -> F:
    jitted = jax.jit(f, static_argnames=static_argnames)

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
      if _has_tracer((args, kwargs)):
        return f(*args, **kwargs)
      with jax.enable_x64(True):
        out = jitted(*args, **kwargs)
        return jax.tree.map(np.asarray, out)

    wrapper.pure = f  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]

  return decorate(fn) if fn is not None else decorate
