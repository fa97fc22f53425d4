"""rlsys: post-train language models with RL and distillation on Ray."""

__version__ = "0.1.0"
