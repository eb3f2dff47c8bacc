"""Draw the tabular convergence curves (docs/tabular.md) and print the measured slopes and final gaps.

  python tools/plot_tabular_convergence.py --out_dir /tmp/tabular_plots

Writes three PNGs:
  convergence.png     log-log KL_p(pi* || pi_t) against t for MTPO, MTPO-tau and multi-turn RLHF on a random
                      2-turn instance, with the bounds of Thm 4.2 / B.6 (32 H Qbar^2/(alpha^2 (t+1))) and
                      Thm B.2 (9 H Qbar^2/(alpha^2 (t+1)))
  exploitability.png  exploitability (C2 gap) against t on the cyclic game: MTPO, MTPO-tau (alpha eta_t and constant
                      tau), multi-turn RLHF with a Bradley-Terry reward fitted to mu's data
  iterative_ppo.png   max_s V*(s) - V^{pi_i}(s) against the iteration for Iterative PPO, exact and Monte-Carlo Q
"""

from __future__ import annotations

import argparse
import os

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mtpo_jax.tabular import algorithms, baselines, instances, nash, values  # noqa: E402
from mtpo_jax.tabular import iterative_ppo as ppo  # noqa: E402
from mtpo_jax.tabular import mdp as mdp_lib  # noqa: E402

FLOOR = 1e-11  # below this the KL is float64 rounding, excluded from slope fits


def _slope(ts: np.ndarray, ys: np.ndarray) -> float:
  keep = (ts >= 10) & (ys > FLOOR)
  return float(np.polyfit(np.log(ts[keep]), np.log(ys[keep]), 1)[0])


def plot_convergence(out_dir: str, num_iters: int, alpha: float) -> dict[str, float]:
  instance = mdp_lib.random_mdp(0, (1, 3, 4), num_actions=3, num_contexts=2)
  pi_star = nash.solve_equilibrium(instance, alpha)
  reward = np.random.default_rng(0).normal(size=(2, 4))
  rlhf_star = nash.soft_optimal(instance, reward, alpha)[0]
  ts = np.arange(1, num_iters + 1)
  curves = {
      "MTPO: KL(pi* || pi_t)": values.trajectory_kl_curve(
          instance, pi_star, algorithms.run_mtpo(instance, alpha, num_iters).policies),
      "MTPO-tau: KL(pi* || pi_t^alpha)": values.trajectory_kl_curve(
          instance, pi_star, algorithms.run_mtpo_tau(instance, alpha, num_iters).played),
      "RLHF: KL(pi*_RLHF || pi_t)": values.trajectory_kl_curve(
          instance, rlhf_star, algorithms.run_rlhf(instance, reward, alpha, num_iters).policies),
  }
  qbar = mdp_lib.q_bar(instance, alpha)
  fig, ax = plt.subplots(figsize=(7, 5))
  for label, kl in curves.items():
    shown = kl > FLOOR
    ax.loglog(ts[shown], kl[shown], label=f"{label}  (slope {_slope(ts, kl):.2f})")
  bound = instance.horizon * qbar**2 / (alpha**2 * (ts + 1))
  ax.loglog(ts, 32 * bound, "k--", label="Thm 4.2 / B.6 bound 32HQ²/(α²(t+1))")
  ax.loglog(ts, 9 * bound, "k:", label="Thm B.2 bound 9HQ²/(α²(t+1))")
  ax.loglog(ts, curves["MTPO: KL(pi* || pi_t)"][0] * 2 / (ts + 1), color="grey", lw=0.8, label="reference slope -1")
  ax.set(xlabel="iteration t", ylabel="trajectory KL_p (Lemma 3.1)", ylim=(FLOOR / 10, None),
         title=f"Last-iterate convergence, exact tabular (H=2, |Y|=3, 2 contexts, α={alpha})")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "convergence.png"), dpi=120)
  plt.close(fig)
  return {label: _slope(ts, kl) for label, kl in curves.items()}


def plot_exploitability(out_dir: str, num_iters: int, alpha: float = 0.1, tau: float = 0.05) -> dict[str, float]:
  game = instances.cyclic_game()
  reward = baselines.final_state_reward_model(game, game.mu)
  runs = {
      "MTPO": algorithms.run_mtpo(game, alpha, num_iters).policies,
      "MTPO-tau (mixing α·η_t)": algorithms.run_mtpo_tau(game, alpha, num_iters).policies,
      f"MTPO-tau (constant τ={tau})": algorithms.run_mtpo_tau(game, alpha, num_iters, tau=tau).policies,
      "multi-turn RLHF (fitted BT reward)": algorithms.run_rlhf(game, reward, alpha, num_iters).policies,
  }
  ts = np.arange(1, num_iters + 1)
  fig, ax = plt.subplots(figsize=(7, 5))
  finals = {}
  for label, policies in runs.items():
    gap = nash.exploitability_curve(game, policies, alpha)
    finals[label] = float(gap[-1])
    ax.loglog(ts, np.maximum(gap, 1e-16), label=f"{label}  (final {gap[-1]:.1e})")
  ax.set(xlabel="iteration t", ylabel="exploitability  max_π P_α(π ≻ π_t) − 1/2",
         title=f"Cyclic (rock-paper-scissors) preferences over final states, α={alpha}")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "exploitability.png"), dpi=120)
  plt.close(fig)
  return finals


def plot_iterative_ppo(out_dir: str, num_iters: int = 60, beta: float = 0.02) -> dict[str, float]:
  mdp = ppo.random_discounted_mdp(0, num_states=6, num_actions=3, gamma=0.8)
  v_star = np.zeros(6)
  for _ in range(400):
    v_star = np.max(mdp.reward + mdp.gamma * mdp.trans @ v_star, axis=1)
  uniform = np.full((6, 3), 1 / 3)
  runs = {
      "exact Q": ppo.run_iterative_ppo(mdp, uniform, beta, num_iters),
      "Monte-Carlo Q (400 rollouts)": ppo.run_iterative_ppo(
          mdp, uniform, beta, num_iters, key=jax.random.key(0, impl="rbg"), num_rollouts=400, horizon=40),
  }
  fig, ax = plt.subplots(figsize=(7, 5))
  finals = {}
  for label, run in runs.items():
    gap = np.max(v_star - run.values, axis=1)
    finals[label] = float(gap[-1])
    ax.semilogy(np.arange(num_iters + 1), np.maximum(gap, 1e-16), marker=".", label=f"{label}  (final {gap[-1]:.1e})")
  ax.set(xlabel="iteration i", ylabel="max_s V*(s) − V^{π_i}(s)",
         title=f"Iterative PPO (idealised KL step, β={beta}), 6 states, 3 actions, γ=0.8")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "iterative_ppo.png"), dpi=120)
  plt.close(fig)
  return finals


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--num_iters", type=int, default=2000)
  parser.add_argument("--alpha", type=float, default=0.5, help="KL coefficient of the convergence figure")
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  for label, slope in plot_convergence(args.out_dir, args.num_iters, args.alpha).items():
    print(f"log-log slope  {label:34s} {slope:7.2f}")
  for label, gap in plot_exploitability(args.out_dir, args.num_iters).items():
    print(f"final exploitability  {label:36s} {gap:.3e}")
  for label, gap in plot_iterative_ppo(args.out_dir).items():
    print(f"final max_s V*-V  Iterative PPO {label:30s} {gap:.3e}")
  for name in ("convergence.png", "exploitability.png", "iterative_ppo.png"):
    print(f"wrote {os.path.join(args.out_dir, name)}")


if __name__ == "__main__":
  main()
