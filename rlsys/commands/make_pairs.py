"""`rlsys make-pairs CONFIG --out FILE`: preference rows from the rollout workers and the
reward worker. Each prompt of `data` gets a group of `rollout.group_size` answers; the best
and the worst answer of a group (when their rewards differ) become one row, in the JSONL
format that `data.preferences` reads (the prompt as the chat messages it was sampled with)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rlsys.commands.arguments import config_arguments, stop_log_forwarding
from rlsys.config import Config, load_config

NAME, HELP = "make-pairs", "preference rows (best vs worst of each sampled group) as JSONL"


def add_arguments(p) -> None:
    config_arguments(p, "YAML config file (model, data, rollout, reward)")
    p.add_argument("--out", required=True, help="JSONL file to write (must not exist)")
    p.add_argument("--prompts", type=int, default=None, help="prompts of data to sample (default: all)")


def make_pairs(cfg: Config, out: str, num_prompts: int | None) -> dict:
    from rlsys.algorithms.dpo import best_worst_pairs
    from rlsys.data.preferences import PreferencePair, write_pairs
    from rlsys.data.samplers import group_temperatures
    from rlsys.data.templates import prompt_messages
    from rlsys.distributed.roles import Roles
    from rlsys.preparation import prepare

    target = Path(out)
    if target.exists():
        raise FileExistsError(f"{target} exists; pick another --out (rows are never appended to a file)")
    prepared = prepare(cfg, with_pairs=False)
    roles = Roles(cfg)
    rows: list = []
    sampled, rewarded = 0, []
    try:
        roles.start_sampling(prepared.model_path)
        prompts = prepared.train[: num_prompts or len(prepared.train)]
        temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
        chunk = cfg.rollout.prompts_per_iteration
        for start in range(0, len(prompts), chunk):
            items = prompts[start : start + chunk]
            samples = roles.generate(items, temps, cfg.rollout.max_new_tokens)  # a group per prompt
            rewards, _ = roles.rewards(items, samples, None)  # rule/model rewards of every answer
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
        roles.stop()
    write_pairs(target, rows)
    return {"out": str(target), "prompts": len(prompts), "samples": sampled, "pairs": len(rows),
            "mean_reward": sum(rewarded) / max(1, len(rewarded))}


def run(args) -> int:
    result = make_pairs(load_config(args.config, args.overrides), args.out, args.prompts)
    stop_log_forwarding()
    print(json.dumps(result))
    return 0
