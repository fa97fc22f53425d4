"""Model loading, built-in model catalogue and log-prob computation."""
