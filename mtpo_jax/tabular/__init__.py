"""Exact tabular solvers for the theory checks of MTPO and Iterative PPO (papers/digest.md part C; docs/tabular.md).

Modules:
  mdp            the layered contextual MDP (A1), random and hand-written constructors
  instances      hand-written games for the demonstrations C6 (cyclic preferences) and C8 (seller example)
  values         reach probabilities, preference Q/V by backward recursion (A2), trajectory KL (Lemma 3.1)
  algorithms     MTPO (Eq. 2), MTPO-tau (A4), multi-turn RLHF (A5), single-turn Nash-MD
  nash           soft best response, exploitability, fixed point, Newton equilibrium solver (C2)
  baselines      Bradley-Terry reward fitting and the single-turn baselines (A8)
  iterative_ppo  Algorithm 1 of Jiang et al. in a discounted tabular MDP (B3, B4)
  precision      float64 execution without flipping JAX's global x64 flag
"""
