"""`rlsys make-pairs CONFIG --out FILE`: preference rows from the rollout workers and the
reward worker. Each prompt of `data` gets a group of `rollout.group_size` answers; the best
and the worst answer of a group (when their rewards differ) become one row, in the JSONL
format that `data.preferences` reads (the prompt as the chat messages it was sampled with)."""

from __future__ import annotations

import sys
from pathlib import Path

from rlsys.algorithms.dpo import best_worst_pairs
from rlsys.config import Config
from rlsys.data.preferences import PreferencePair, write_pairs
from rlsys.data.templates import prompt_messages
from rlsys.workers.rollout import group_temperatures


def make_pairs(cfg: Config, out: str, num_prompts: int | None) -> dict:
    from rlsys.controller import Controller
    from rlsys.preparation import prepare

    target = Path(out)
    if target.exists():
        raise FileExistsError(f"{target} exists; pick another --out (rows are never appended to a file)")
    prepared = prepare(cfg, with_pairs=False)
    ctl = Controller(cfg)
    rows: list[PreferencePair] = []
    sampled, rewarded = 0, []
    try:
        ctl.start_sampling(prepared)
        prompts = prepared.train[: num_prompts or len(prepared.train)]
        temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
        chunk = cfg.rollout.prompts_per_iteration
        for start in range(0, len(prompts), chunk):
            items = prompts[start : start + chunk]
            samples = ctl.generate(items, temps, cfg.rollout.max_new_tokens)  # a group per prompt
            rewards, _ = ctl.rewards(items, samples, None)  # rule/model rewards of every answer
            sampled += len(samples)
            rewarded += rewards
            min_gap = cfg.algorithm.pair_min_gap if cfg.algorithm.type == "dpo" else 0.0
            for best, worst in best_worst_pairs(rewards, cfg.rollout.group_size, min_gap):
                item = items[samples[best].prompt_index]
                messages = prompt_messages(item.question, cfg.data.template, cfg.data.system_prompt)
                rows.append(PreferencePair(messages, samples[best].text, samples[worst].text,
                                           item.metadata.get("where", "")))
            print(f"rlsys make-pairs: {start + len(items)}/{len(prompts)} prompts, {len(rows)} pairs", file=sys.stderr)
    finally:
        ctl.shutdown()
    write_pairs(target, rows)
    return {"out": str(target), "prompts": len(prompts), "samples": sampled, "pairs": len(rows),
            "mean_reward": sum(rewarded) / max(1, len(rewarded))}
