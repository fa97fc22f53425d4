"""Checks of a reward-model checkpoint that need no actor: run before any role starts, and by
the reward-model actor itself when it loads."""

from __future__ import annotations

from rlsys.errors import RewardModelError

# The settings a `reward_model` reward term may give in its kwargs (RewardModelScorer's
# parameters), plus where its actor is placed.
REWARD_MODEL_SETTINGS = ("path", "batch_size", "padding_side", "dtype", "max_length", "system_prompt")
PLACEMENT_SETTINGS = ("num_cpus", "num_gpus", "resources")


def check_reward_model(path: str) -> None:
    """Refuse, before any actor starts, a checkpoint that is not a sequence classifier or
    whose tokenizer has no pad token (batches could not be padded)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise RewardModelError(f"reward_model: cannot read a model config at {path!r} ({exc})") from None
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise RewardModelError(
            f"reward_model: {path} is a {', '.join(architectures) or 'model of unknown architecture'}, not a "
            "sequence classifier; give a checkpoint saved from AutoModelForSequenceClassification (a reward model)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        raise RewardModelError(
            f"reward_model: the tokenizer of {path} has no pad token, so completions cannot be batched; set one "
            "(e.g. tokenizer.pad_token = tokenizer.eos_token, and config.pad_token_id) and save the checkpoint again")
