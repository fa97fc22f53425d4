"""`rlsys eval SUITE --model A [--model B ...]`: every task of a suite for every model, generation
on vLLM rollout workers (Ray), perplexity with the HF model in an actor, scoring on the driver.
The suite, its data and every model are checked before any model loads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlsys.commands.arguments import stop_log_forwarding

NAME, HELP = "eval", "evaluate one or more models on a suite of tasks (table, eval.json)"


def add_arguments(p) -> None:
    p.add_argument("suite", help="suite YAML (configs/eval/gsm8k.yaml, configs/eval/faroese.yaml)")
    p.add_argument("--model", action="append", required=True,
                   help="built-in name, HF folder, run folder, PEFT adapter folder, or ADAPTER@BASE (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: runs/eval-<suite name>)")
    p.add_argument("--limit", type=int, default=None, help="at most N examples per task")
    p.add_argument("--workers", type=int, default=None, help="vLLM workers (default: the suite's `workers`)")
    p.add_argument("--dtype", default="auto", help="auto: bf16 on GPUs and where it measured faster here, else fp32")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--gpus", type=float, default=0.0, help="GPUs per vLLM worker and for the scorer")
    p.add_argument("--seed", type=int, default=0)

START_TIMEOUT_S = 900.0
CALL_TIMEOUT_S = 3600.0


def evaluate_model(model, tasks: list, workers: int, dtype: str, max_model_len: int, num_gpus: float,
                   seed: int, console) -> tuple[dict, dict]:
    """Every task for one model (an `EvalModel`): its metrics and seconds per task."""
    import ray
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from transformers import AutoTokenizer

    from rlsys.eval.engine_tasks import run_tasks

    from rlsys.eval.actors import eval_rollout_pool, start_document_scorer

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
    from rich.console import Console

    from rlsys.config import RayConfig
    from rlsys.distributed.cluster import init_ray
    from rlsys.eval.models import resolve_eval_model
    from rlsys.eval.report import eval_json, print_results, write_json
    from rlsys.eval.suite import load_suite
    from rlsys.eval.tasks import build_task
    from rlsys.config.dtypes import resolve_dtype

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


def run(args) -> int:
    summary = run_eval(args.suite, args.model, args.out, args.limit, args.workers, args.dtype,
                       args.max_model_len, args.gpus, args.seed)
    stop_log_forwarding()
    print(json.dumps({"eval_json": str(Path(summary["out"]) / "eval.json"), "wall_seconds": summary["wall_seconds"]}))
    return 0
