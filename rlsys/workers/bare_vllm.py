"""Bare vLLM's generation rate: the baseline `rlsys bench` holds a rollout worker against (the
same engine arrangement, without rlsys's actor, records and sampling options around it)."""

from __future__ import annotations

import statistics
import time

from rlsys.workers.engine_process import place_engine_core


def bare_vllm_tokens_per_s(model_path: str, prompts, group: int, max_tokens: int, repeats: int, dtype: str) -> float:
    from vllm import LLM, SamplingParams

    place_engine_core("auto", 1)  # the same engine arrangement as a rollout worker's
    llm = LLM(model=model_path, dtype=dtype, max_model_len=1024, kv_cache_memory_bytes=2**30,
              enforce_eager=True, seed=0, disable_log_stats=True)
    params = SamplingParams(n=group, temperature=1.0, max_tokens=max_tokens, logprobs=0)
    requests = [{"prompt_token_ids": p} for p in prompts]
    llm.generate(requests, params, use_tqdm=False)  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        outs = llm.generate(requests, params, use_tqdm=False)
        tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        rates.append(tokens / (time.perf_counter() - started))
    return statistics.median(rates)
