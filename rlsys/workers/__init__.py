"""The roles of a run as plain classes: rollout, learner, reward. Ray wrapping lives in rlsys.distributed."""
