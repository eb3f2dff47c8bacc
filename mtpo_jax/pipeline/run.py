"""`run_pipeline`: the project's main job (README), Gin-bound in gin/experiments/pipeline_*.gin.

    python -m mtpo_jax.main --gin_file=experiments/pipeline_tiny.gin --gin.MODEL_DIR="'runs/pipeline'"

Builds the stage graph of plan.py under MODEL_DIR, runs it (resuming: finished stages are skipped, see
stages.py), then writes MODEL_DIR/results.md (tables.py). The parent process only schedules; every stage runs
in its own process on `mesh_gin_file`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shlex
import sys
import time
from typing import Sequence

from mtpo_jax import run_config
from mtpo_jax.pipeline import plan, stages, tables
from mtpo_jax.pipeline.lock import run_lock


def run_pipeline(model_dir: str, *, plan_config: plan.PlanConfig = plan.PlanConfig(), max_parallel: int = 2,
                 only: Sequence[str] = (), compilation_cache: bool = True) -> str:
  """Runs the pipeline (module docstring) that `plan_config` describes (Gin: PipelinePlan) under `model_dir`;
  returns results.md. `only`: run just the stages these patterns name (exact names, globs, or folders ending in
  "/"; see `select`) and what they depend on. `compilation_cache`: the stages share JAX's persistent compilation
  cache in MODEL_DIR/jax_cache (unless JAX_COMPILATION_CACHE_DIR is set), so seeds and methods with equal shapes
  compile once (about 14 s of each tiny RL stage's 43 s)."""
  cfg = dataclasses.replace(
      plan_config, run_dir=model_dir, model_gin_files=tuple(plan_config.model_gin_files),
      model_bindings=tuple(plan_config.model_bindings), seeds=tuple(plan_config.seeds),
      education_methods=tuple(plan_config.education_methods),
      negotiation_methods=tuple(plan_config.negotiation_methods), challengers=tuple(plan_config.challengers),
      overrides={k: tuple(v) for k, v in (plan_config.overrides or {}).items()}, python=sys.executable)
  graph = plan.build(cfg)
  if only:
    graph = select(graph, only)
  t0 = time.time()
  env = {}
  if compilation_cache and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    env = {"JAX_COMPILATION_CACHE_DIR": os.path.abspath(os.path.join(model_dir, "jax_cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
  run_config.accept(model_dir)  # the plan is built: the configuration is accepted
  runner = stages.Runner(model_dir, max_parallel=max_parallel, env=env)
  with run_lock(model_dir):  # one pipeline per MODEL_DIR (lock.py)
    runner.run(graph)
    seconds = {}
    for s in graph:
      marker = stages.read_marker(runner.out_dir(s)) or {}
      seconds[s.name] = float(marker.get("seconds", 0.0))
    command = "python -m mtpo_jax.main " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    text = tables.write_results(model_dir, seconds, command, run_seconds=time.time() - t0)
  print(f"[pipeline] finished in {(time.time() - t0) / 60:.1f} min this run; results in "
        f"{os.path.join(model_dir, 'results.md')}")
  print(text)
  return text


def select(graph: Sequence[stages.Stage], patterns: Sequence[str]) -> list[stages.Stage]:
  """The stages named by `patterns`, plus their transitive dependencies, in graph order. A pattern is an exact
  stage name (`education/sft` is that stage, not also `education/sft_student`), a shell glob (`education/rl/*`)
  or, ending in "/", a whole folder (`negotiation/`)."""
  by_name = {s.name: s for s in graph}

  def named(name: str, pattern: str) -> bool:
    if pattern.endswith("/"):
      return name.startswith(pattern)
    return fnmatch.fnmatchcase(name, pattern)

  keep: set[str] = set()
  todo = [s.name for s in graph if any(named(s.name, p) for p in patterns)]
  if not todo:
    raise ValueError(f"no stage matches any of {list(patterns)} (exact names, globs, or folders ending in '/'); "
                     f"stages: {[s.name for s in graph]}")
  while todo:
    name = todo.pop()
    if name not in keep:
      keep.add(name)
      todo += list(by_name[name].deps)
  return [s for s in graph if s.name in keep]
