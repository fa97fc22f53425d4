"""Rule rewards as plain callables `fn(prompts, completions, answers, **fields) -> list[float]`."""
