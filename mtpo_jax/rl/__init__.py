"""Pure, jittable RL math: advantages, KL, losses. No I/O, no Gin, no state."""
