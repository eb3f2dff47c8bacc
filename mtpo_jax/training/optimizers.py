"""Optimizers and learning-rate schedules (bound by Gin at the entrypoint)."""

from __future__ import annotations

import optax


def make_schedule(learning_rate: float, schedule: str = "constant", warmup_steps: int = 0,
                  total_steps: int | None = None, end_value: float = 0.0) -> optax.Schedule:
  """constant | linear | cosine | rsqrt (T5's inverse square root), each after a linear warm-up."""
  if schedule == "constant":
    main = optax.constant_schedule(learning_rate)
  elif schedule in ("linear", "cosine"):
    if not total_steps or total_steps <= warmup_steps:
      raise ValueError(f"schedule {schedule!r} needs total_steps > warmup_steps, got {total_steps}")
    decay = total_steps - warmup_steps
    main = (optax.linear_schedule(learning_rate, end_value, decay) if schedule == "linear"
            else optax.cosine_decay_schedule(learning_rate, decay, alpha=end_value / learning_rate))
  elif schedule == "rsqrt":
    offset = max(warmup_steps, 1)
    main = lambda step: learning_rate * (offset / (step + offset)) ** 0.5
  else:
    raise ValueError(f"unknown schedule {schedule!r}; expected constant, linear, cosine or rsqrt")
  if warmup_steps <= 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps), main], [warmup_steps])


def make_optimizer(name: str = "adafactor", learning_rate: float = 1e-3, schedule: str = "constant",
                   warmup_steps: int = 0, total_steps: int | None = None, decay_rate: float = 0.8,
                   weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999,
                   multiply_by_parameter_scale: bool = True, clipping_threshold: float | None = 1.0,
                   momentum: float | None = None,
                   grad_clip_norm: float | None = None) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Adafactor with T5X's semantics, or AdamW / SGD; optional global-norm gradient clipping.

  Adafactor (Shazeer & Stern 2018) as T5X runs it, so a learning rate from a T5X paper (MTPO's Table 4: 4e-5,
  decay 0.8) means the same step here: each parameter's update is scaled by max(1e-3, RMS(parameter))
  (`multiply_by_parameter_scale`) and clipped to RMS 1 (`clipping_threshold`, the update clipping of the
  Adafactor paper, not a gradient clip). `grad_clip_norm` adds a global-norm gradient clip before the optimizer;
  T5X has none by default, so neither do we: a Gin file that wants one asks for it (runs/sft.gin does).
  `momentum`: Adafactor's optional first moment (T5X's beta1; None = off, T5X's default).
  """
  lr = make_schedule(learning_rate, schedule, warmup_steps, total_steps)
  if name == "adafactor":
    tx = optax.adafactor(lr, decay_rate=decay_rate, weight_decay_rate=weight_decay or None,
                         multiply_by_parameter_scale=multiply_by_parameter_scale,
                         clipping_threshold=clipping_threshold, momentum=momentum)
  elif name == "adamw":
    tx = optax.adamw(lr, b1=b1, b2=b2, weight_decay=weight_decay)
  elif name == "sgd":
    tx = optax.sgd(lr)
  else:
    raise ValueError(f"unknown optimizer {name!r}; expected adafactor, adamw or sgd")
  if grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx, lr
