"""Running suite tasks against one model, given how to generate and how to score windows: the
one implementation behind `rlsys eval` (vLLM workers + an HF scorer) and a training run's
held-out suite (its own rollout pool, current weights)."""

from __future__ import annotations

from collections.abc import Callable

from rlsys.data.samplers import request_seed
from rlsys.errors import DataError
from rlsys.data.templates import prompt_token_ids, render_messages
from rlsys.eval.scorers import assemble, window_jobs
from rlsys.eval.tasks import Scored
from rlsys.records import PromptItem, Sample

Generate = Callable[[list[PromptItem], list[float], int, list[int] | None], list[Sample]]
ScoreWindows = Callable[[list[list[int]], list[list[int]]], list[list[float]]]


def prompt_items(task, tokenizer, max_model_len: int) -> list[PromptItem]:
    """Each example rendered with the model's chat template; one too long for the engine is an
    error naming it, before anything is generated."""
    items = []
    for ex in task.examples:
        text = render_messages(tokenizer, ex.messages)
        ids = prompt_token_ids(tokenizer, text)
        if len(ids) + task.max_new_tokens > max_model_len:
            raise DataError(f"{ex.where}: the prompt is {len(ids)} tokens; with max_new_tokens {task.max_new_tokens} "
                            f"it exceeds the engine's max_model_len {max_model_len}: raise --max-model-len or "
                            "shorten the example")
        items.append(PromptItem(text, ids, "", str(ex.reference)))
    return items


def run_generation_task(task, items: list[PromptItem], generate: Generate, batch: int, seed: int,
                        advance: Callable[[int], None]) -> Scored:
    temps = [task.temperature] * task.samples
    completions: list[list[str]] = [[] for _ in items]
    tokens: list[list[int]] = [[] for _ in items]
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        seeds = None if task.temperature == 0.0 else [request_seed(seed, 0, start + i) for i in range(len(chunk))]
        for s in generate(chunk, temps, task.max_new_tokens, seeds):
            completions[start + s.prompt_index].append(s.text)
            tokens[start + s.prompt_index].append(len(s.completion_ids))
        advance(len(chunk))
    return task.score(completions, tokens)


def run_perplexity_task(task, tokenizer, score_windows: ScoreWindows, max_model_len: int, batch: int,
                        advance: Callable[..., None]) -> Scored:
    docs = [tokenizer(text).input_ids for _, text in task.documents]
    window = min(task.spec.window, max_model_len - 1)
    jobs = window_jobs(docs, window, min(task.spec.stride, window))
    advance(0, len(jobs))  # the bar's length is known once the windows are planned
    results: list[list[float]] = []
    for start in range(0, len(jobs), batch):
        part = jobs[start : start + batch]
        results += score_windows([c for _, c, _ in part], [t for _, _, t in part])
        advance(len(part))
    return task.score(assemble(len(docs), jobs, results))


def run_tasks(tasks: list, tokenizer, generate: Generate, score_windows: ScoreWindows, max_model_len: int,
              seed: int = 0, batch: int = 64, progress=None) -> tuple[dict[str, Scored], dict[str, float]]:
    """Every task's scores, and the seconds each took. `progress`: a rich Progress (a bar per task)."""
    import time

    out, seconds = {}, {}
    prepared = {t.name: prompt_items(t, tokenizer, max_model_len) for t in tasks if t.kind != "perplexity"}
    for task in tasks:
        bar = progress.add_task(task.name, total=len(prepared.get(task.name, ()))) if progress is not None else None

        def advance(n: int, total: int | None = None, bar=bar) -> None:
            if progress is not None:
                progress.update(bar, advance=n, **({"total": total} if total is not None else {}))

        started = time.perf_counter()
        if task.kind == "perplexity":
            out[task.name] = run_perplexity_task(task, tokenizer, score_windows, max_model_len, batch, advance)
        else:
            out[task.name] = run_generation_task(task, prepared[task.name], generate, batch, seed, advance)
        seconds[task.name] = time.perf_counter() - started
    return out, seconds
