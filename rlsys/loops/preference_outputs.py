"""What a preference run leaves besides the adapter: `sample_generations.jsonl` (held-out
prompts answered by the starting and the tuned weights, both through vLLM) and
`training_stats.json` (data counts and drops, steps, loss curve, held-out metrics,
parameter counts, time)."""

from __future__ import annotations

import json
from pathlib import Path

from rlsys.loops.context import RunContext
from rlsys.records import PromptItem

SHOWN = 16  # held-out prompts answered in sample_generations.jsonl


def generation_prompts(ctx: RunContext) -> list[PromptItem]:
    """Held-out pairs' prompts (offline), or held-out tasks (online)."""
    pairs = ctx.data.pairs
    if pairs is None:
        return ctx.data.evaluation[:SHOWN]
    return [PromptItem(row.prompt_text(), item.prompt_ids, row.prompt_text(), "", {"chosen": row.chosen,
                                                                                    "rejected": row.rejected})
            for row, item in zip(pairs.heldout_rows[:SHOWN], pairs.heldout[:SHOWN])]


def answer_prompts(ctx: RunContext, prompts: list[PromptItem]) -> list[str]:
    """Greedy answers of the engines' current weights (the adapter, under LoRA)."""
    if not prompts:
        return []
    max_tokens = ctx.cfg.eval.max_new_tokens or ctx.cfg.rollout.max_new_tokens
    return [s.text for s in ctx.roles.generate(prompts, [0.0], max_tokens, "eval")]


def write_generations(path: Path, prompts: list[PromptItem], base: list[str], tuned: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for item, b, t in zip(prompts, base, tuned):
            row = {"prompt": item.question, "base": b, "tuned": t, **item.metadata}
            if item.answer:
                row["answer"] = item.answer
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def loss_curve(losses: list[float]) -> dict[str, float]:
    if not losses:
        return {}
    tail = losses[-max(1, len(losses) // 10):]
    return {"first": losses[0], "last": losses[-1], "min": min(losses), "mean_last_10pct": sum(tail) / len(tail)}


def write_training_stats(path: Path, ctx: RunContext, summary: dict, losses: list[float]) -> None:
    cfg, pairs = ctx.cfg, ctx.data.pairs
    counts = ctx.roles.parameter_counts()
    stats = {
        "algorithm": cfg.algorithm.model_dump(mode="json"),
        "lora": cfg.model.lora.model_dump(mode="json") if cfg.model.lora else None,
        "data": {**pairs.report.to_dict(), "train_pairs": len(pairs.train), "heldout_pairs": len(pairs.heldout)}
        if pairs else {"online_rounds": cfg.run.iterations},
        "steps": summary["steps"],
        "epochs": cfg.algorithm.epochs,
        "loss_curve": loss_curve(losses),
        "heldout_before": summary["eval_before"],
        "heldout_after": summary["eval_after"],
        "parameters": {**counts, "trainable_share": counts["trainable"] / max(1, counts["total"])},
        "wall_seconds": summary["wall_seconds"],
    }
    path.write_text(json.dumps(stats, indent=2, ensure_ascii=False))
