"""Combining the training statistics of every learner rank into the run's metrics.

Each rank reports its own numbers; this is where they become one row: the policy loss
is a sum (each rank returns its share of the global loss), token-level statistics are
weighted by each rank's tokens, timings take the slowest rank, and the rest (grad norm,
learning rate, the L_PT loss) are averaged.
"""

from __future__ import annotations

SUMMED = ("train/policy_loss", "train/tokens", "train/flops", "train/mismatch_tokens", "critic/value_loss", "critic/tokens")
WEIGHTS = {
    "train/approx_kl": "train/tokens",
    "critic/value_clip_fraction": "critic/tokens",
    "train/clip_fraction": "train/tokens",
    "train/kl": "train/tokens",
    "train/ratio": "train/tokens",
    "train/entropy": "train/tokens",
    "train/logprob_mismatch": "train/mismatch_tokens",
    "train/mismatch_kl": "train/mismatch_tokens",
    "train/tis_weight": "train/tokens",
    "train/tis_clip_fraction": "train/tokens",
}


def merge_rank_stats(per_rank: list[dict[str, float]], lpt_coef: float = 0.0) -> dict[str, float]:
    keys = {k for stats in per_rank for k in stats}
    merged: dict[str, float] = {}
    for key in keys:
        present = [s for s in per_rank if key in s]
        values = [s[key] for s in present]
        if key in SUMMED:
            merged[key] = sum(values)
        elif key in WEIGHTS:
            weights = [s.get(WEIGHTS[key], 0.0) for s in present]
            total = sum(weights)
            merged[key] = sum(v * w for v, w in zip(values, weights)) / total if total else sum(values) / len(values)
        elif key.startswith("time/") or key.endswith("_max"):
            merged[key] = max(values)
        else:
            merged[key] = sum(values) / len(values)
    if "train/flops" in merged and merged.get("time/train"):  # all ranks' useful work over the slowest rank's time
        merged["train/flops_per_s"] = merged["train/flops"] / merged["time/train"]
    if "train/policy_loss" in merged:
        merged["train/loss"] = merged["train/policy_loss"] + lpt_coef * merged.get("train/lpt_loss", 0.0)
    return merged
