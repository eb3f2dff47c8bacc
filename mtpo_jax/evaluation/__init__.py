"""Evaluation of trained policies: the pairwise win-rate matrix (papers/digest.md A13), reports and the CLI."""
