"""The explained variance a pass-rate critic would reach on a config's task, measured with vLLM.

Samples `--prompts` training prompts, each `rollout.group_size` times (the batch a critic is
scored on) plus `--draws` more times (its pass rate), at the config's temperature with the
config's model, rewards them with the correctness reward, and prints what a critic that knew
each prompt's pass rate (and, after the answer, the reward itself) would explain. Usage:

    .venv/bin/python benchmarks/value_ceiling.py configs/demo/ppo.yaml [--temperature 0.6]
"""

from __future__ import annotations

import argparse
import os
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--draws", type=int, default=12)
    parser.add_argument("--temperature", type=float, default=None, help="default: rollout.temperature")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams, TokensPrompt

    from rlsys.config import load_config
    from rlsys.data.sources import load_train_eval
    from rlsys.data.templates import prompt_token_ids, render_prompt
    from rlsys.diagnostics.value_ceiling import ScoredSample, value_ceiling
    from rlsys.models.catalog import resolve_model
    from rlsys.rewards.answers import NUMBER, answers_match, extract_answer

    cfg = load_config(args.config)
    temperature = cfg.rollout.temperature if args.temperature is None else args.temperature
    path = resolve_model(cfg.model.path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    train, _ = load_train_eval(cfg.data, args.seed)
    random.Random(args.seed).shuffle(train)
    tasks = train[: args.prompts]
    prompts = [prompt_token_ids(tokenizer, render_prompt(tokenizer, t.question, cfg.data.template, cfg.data.system_prompt))
               for t in tasks]
    group = cfg.rollout.group_size
    llm = LLM(path, dtype="float32", max_model_len=cfg.model.max_model_len, seed=args.seed)
    params = SamplingParams(temperature=temperature, max_tokens=cfg.rollout.max_new_tokens, n=group + args.draws)
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)

    def scored(task, completion) -> ScoredSample:
        ids = list(completion.token_ids)
        numbers = list(NUMBER.finditer(tokenizer.decode(ids, skip_special_tokens=True)))
        end = numbers[-1].end() if numbers else None
        # The state before token t holds ids[:t]; it knows the answer once its text runs past it.
        after = 0 if end is None else sum(
            len(tokenizer.decode(ids[:t], skip_special_tokens=True)) > end for t in range(len(ids)))
        return ScoredSample(float(answers_match(extract_answer(completion.text), task.answer)), len(ids), after)

    groups = []
    for task, out in zip(tasks, outputs):
        samples = [scored(task, c) for c in out.outputs]
        groups.append((samples[:group], [s.reward for s in samples[group:]]))
    ceiling = value_ceiling(groups)
    rewards = [s.reward for batch, _ in groups for s in batch]
    print(f"{args.config}: {len(tasks)} prompts x {group} samples (+{args.draws} draws each), temperature {temperature}, "
          f"mean reward {sum(rewards) / len(rewards):.3f}")
    print(f"prompt pass rate only: token EV {ceiling.prompt_only_token:.3f}, sequence EV {ceiling.prompt_only_sequence:.3f}")
    print(f"plus the reward once the answer is written ({100 * ceiling.share_after_answer:.0f}% of states): "
          f"token EV {ceiling.answer_aware_token:.3f}")


if __name__ == "__main__":
    main()
