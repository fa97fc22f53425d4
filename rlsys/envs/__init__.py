"""Multi-turn environments: the interface rlsys drives (reset/step over chat messages), tools,
the token-level bookkeeping of a trajectory (token in, token out) and adapters to
environments from other packages."""
