"""`rlsys eval SUITE --model A [--model B ...]`: every task of a suite for every model, generation
on vLLM rollout workers (Ray), perplexity with the HF model in an actor, scoring on the driver.
The suite, its data and every model are checked before any model loads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rlsys.eval.models import EvalModel, resolve_eval_model
from rlsys.eval.report import eval_json, print_results, write_json
from rlsys.eval.run_tasks import run_tasks
from rlsys.eval.suite import load_suite
from rlsys.eval.tasks import build_task

START_TIMEOUT_S = 900.0
CALL_TIMEOUT_S = 3600.0


def evaluate_model(model: EvalModel, tasks: list, workers: int, dtype: str, max_model_len: int, num_gpus: float,
                   seed: int, console: Console) -> tuple[dict, dict]:
    import ray
    from transformers import AutoTokenizer

    from rlsys.distributed.actors import eval_rollout_pool, start_document_scorer

    tokenizer = AutoTokenizer.from_pretrained(model.path)
    pool = scorer = None

    def generate(items, temperatures, max_tokens, seeds):
        nonlocal pool
        if pool is None:
            pool = eval_rollout_pool(model, workers, dtype, max_model_len, num_gpus, START_TIMEOUT_S)
            pool.ready("starting vLLM engines")
        return pool.generate(items, temperatures, max_tokens, 1.0, "eval", CALL_TIMEOUT_S, seeds)

    def score_windows(contexts, targets):
        nonlocal pool, scorer
        if pool is not None:  # the engines' memory back before the HF model loads
            pool.kill()
            pool = None
        if scorer is None:
            scorer = start_document_scorer(model, dtype, num_gpus)
        return ray.get(scorer.score_windows.remote(contexts, targets), timeout=CALL_TIMEOUT_S)

    # Generation tasks first, then perplexity: one model at a time holds memory.
    ordered = sorted(tasks, key=lambda t: t.kind == "perplexity")
    columns = (TextColumn(f"[bold]{model.label}" + " {task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            scored, seconds = run_tasks(ordered, tokenizer, generate, score_windows, max_model_len, seed,
                                        progress=progress)
    finally:
        if pool is not None:
            pool.kill()
        if scorer is not None:
            ray.kill(scorer)
    return {t.name: scored[t.name] for t in tasks}, seconds


def run_eval(suite_path: str, model_specs: list[str], out_dir: str | None, limit: int | None, workers: int | None,
             dtype: str, max_model_len: int, num_gpus: float, seed: int = 0) -> dict:
    from rlsys.config import RayConfig
    from rlsys.distributed.cluster import init_ray
    from rlsys.models.dtypes import resolve_dtype

    suite = load_suite(suite_path)
    tasks = [build_task(spec, limit) for spec in suite.tasks]  # every data file read and checked here
    models = [resolve_eval_model(m) for m in model_specs]  # every model path and adapter checked here
    out = Path(out_dir or f"runs/eval-{Path(suite_path).stem}")
    out.mkdir(parents=True, exist_ok=True)
    dtype = resolve_dtype(dtype, num_gpus > 0, "--dtype")
    console = Console(stderr=True)
    init_ray(RayConfig())
    results, timings, started = {}, {}, time.perf_counter()
    samples_tmp = out / "eval_samples.jsonl.partial"
    with samples_tmp.open("w", encoding="utf-8") as fh:
        for model in models:
            scored, seconds = evaluate_model(model, tasks, workers or suite.workers, dtype, max_model_len, num_gpus,
                                             seed, console)
            results[model.label] = {name: s.metrics for name, s in scored.items()}
            timings[model.label] = seconds
            for name, s in scored.items():
                for row in s.rows:
                    fh.write(json.dumps({"model": model.label, "task": name, **row}, ensure_ascii=False) + "\n")
    samples_tmp.rename(out / "eval_samples.jsonl")
    summary = eval_json(results, {"suite": str(suite_path), "out": str(out), "limit": limit, "dtype": dtype,
                                  "models_resolved": {m.label: {"path": m.path, "adapter": m.adapter} for m in models},
                                  "seconds": timings, "wall_seconds": time.perf_counter() - started})
    write_json(out / "eval.json", summary)
    print_results(results, f"{Path(suite_path).name} ({out / 'eval.json'})")
    return summary
