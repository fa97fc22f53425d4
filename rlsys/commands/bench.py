"""`rlsys bench`: rollout and weight-sync efficiency against bare vLLM and a raw broadcast,
the training phase's useful FLOP/s against the machine's measured matmul peak, and each
phase's share of an iteration; and this machine's kind with the demo's expected time. The last
line printed is one JSON object."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from rlsys.commands.arguments import stop_log_forwarding
from rlsys.config import Config, RayConfig, load_config
from rlsys.models.catalog import resolve_model

NAME, HELP = "bench", "measure rollout and weight-sync efficiency (last line: JSON)"


def add_arguments(p) -> None:
    p.add_argument("--model", default="tiny-random", help="model path or built-in name (default: tiny-random)")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="auto", help="auto: bf16 where it measured faster here, else fp32")


def _prompts(model_path: str, n: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    from rlsys.data.sources import load_reasoning_gym
    from rlsys.data.templates import render_prompt

    tok = AutoTokenizer.from_pretrained(model_path)
    tasks = load_reasoning_gym("chain_sum", n, 0)
    return [tok(render_prompt(tok, t.question, "plain"), add_special_tokens=False).input_ids for t in tasks]


def matmul_peak_flops_per_s(dtype: str, size: int = 1024, seconds: float = 3.0) -> float:
    """The best rate of square matmuls in `dtype` with all of this process's CPU threads (as
    a learner rank sets them): the calibration the training phase is compared against."""
    import os

    import torch

    from rlsys.models.dtypes import torch_dtype

    torch.set_num_threads(os.cpu_count() or 1)
    a, b = (torch.randn(size, size).to(torch_dtype(dtype)) for _ in range(2))
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2.0 * size**3 / (time.perf_counter() - started))
    return best


def machine_and_demo_time(fp32_flops_per_s: float) -> dict:
    """This machine's kind and the demo's expected seconds, scaled from a measured demo run of
    that kind by the fp32 matmul rate (an estimate, labelled as one)."""
    from rlsys.diagnostics.demo_time import estimate_demo_seconds
    from rlsys.diagnostics.machine import cpu_info, machine_kind

    cpu = cpu_info()
    kind = machine_kind(cpu["isa"])
    seconds, reference = estimate_demo_seconds(kind, fp32_flops_per_s / 1e9)
    return {"cpu": cpu["model"], "kind": kind, "fp32_matmul_gflops": round(fp32_flops_per_s / 1e9, 1),
            "demo_estimate_s": round(seconds), "demo_reference": reference}


def run_bench(args) -> dict:
    import ray

    from rlsys.run import train
    from rlsys.distributed.actors import measure_bare_vllm, start_learners, start_rollout_workers
    from rlsys.distributed.cluster import init_ray
    from rlsys.observability.plots import read_metrics
    from rlsys.planning.inputs import mean_completion_tokens, profile_from_run, workload

    model_path = resolve_model(args.model)
    prompts = _prompts(model_path, args.prompts)
    cfg = Config.model_validate({
        "model": {"path": model_path, "dtype": args.dtype},
        "rollout": {"kv_cache_gib": 1.0},
        "algorithm": {"kl_beta": 0.0},
        "sync": {"bucket_mb": 64},
    })
    dtype = cfg.model.dtype  # `auto` resolved for this machine
    init_ray(RayConfig())
    bare = measure_bare_vllm(cfg, model_path, prompts, args.group_size, args.max_new_tokens, args.repeats, dtype)
    peak = ray.get(ray.remote(num_cpus=cfg.learner.num_cpus, max_calls=1)(matmul_peak_flops_per_s).remote(dtype))
    fp32_peak = peak if dtype == "float32" else ray.get(
        ray.remote(num_cpus=cfg.learner.num_cpus, max_calls=1)(matmul_peak_flops_per_s).remote("float32"))
    worker = start_rollout_workers(cfg, model_path)[0]
    temps = [1.0] * args.group_size
    ray.get(worker.generate.remote(prompts, temps, args.max_new_tokens))  # warm-up
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        samples = ray.get(worker.generate.remote(prompts, temps, args.max_new_tokens))
        rates.append(sum(len(s.completion_ids) for s in samples) / (time.perf_counter() - started))
    rlsys_rate = statistics.median(rates)

    learner = start_learners(cfg, model_path, total_optimizer_steps=1)[0]
    host, port = ray.get(learner.sync_endpoint.remote())
    ray.get([learner.init_sync_group.remote("gloo", host, port, 2, 120.0),
             worker.init_sync_group.remote("gloo", host, port, 1, 2, 120.0)])
    sync_times, raw_times = [], []
    for version in range(1, args.repeats + 2):
        plan = ray.get(learner.weight_plan.remote(cfg.sync.bucket_mb, dtype, version))
        started = time.perf_counter()
        ray.get([learner.broadcast_weights.remote(plan), worker.receive_weights.remote(plan)])
        sync_times.append(time.perf_counter() - started)
        nbytes = sum(m[4] for b in plan["buckets"] for m in b)
        started = time.perf_counter()
        ray.get([learner.raw_broadcast.remote(nbytes), worker.raw_receive.remote(nbytes)])
        raw_times.append(time.perf_counter() - started)
    ray.kill(worker)
    ray.kill(learner)
    sync_s, raw_s = statistics.median(sync_times[1:]), statistics.median(raw_times[1:])

    # Phase shares and rates from a short real run on the same model, shaped like a real
    # batch (8 prompts x 8 samples x 64 tokens, one optimiser step, a reference pass).
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "tiny" / "smoke.yaml",
                              [f"run.dir={tmp}/run", "run.iterations=4", f"model.path={model_path}",
                               f"model.dtype={dtype}", "tracking.console=false", "rollout.prompts_per_iteration=8",
                               "rollout.group_size=8", "rollout.max_new_tokens=64", "learner.mini_batch_size=64",
                               "learner.micro_batch_size=16", "learner.epochs=1", "learner.zero_stage=0",
                               "learner.lr=1e-5", "data.eval_size=8"])
        train(run_cfg)
        run_dir = Path(tmp) / "run"
        rows = read_metrics(run_dir)
        rates = profile_from_run(run_dir, workload(run_cfg, mean_completion_tokens(run_dir)))
    # `logprobs` is the controller's span around the reference and old-policy passes
    phases = sorted({k[5:] for r in rows for k in r if k.startswith("time/")} - {"iteration", "run", "batch_wait", "logprobs"})
    total = sum(r["time/iteration"] for r in rows[1:])
    share = {p: round(sum(r.get(f"time/{p}", 0.0) for r in rows[1:]) / total, 4) for p in phases}
    train_rate = rates.train_flops_per_s
    return {
        "model": args.model,
        **machine_and_demo_time(fp32_peak),
        "rollout_tokens_per_s": round(rlsys_rate, 1),
        "bare_vllm_tokens_per_s": round(bare, 1),
        "rollout_efficiency": round(rlsys_rate / bare, 4),
        "sync_bytes": nbytes,
        "sync_seconds": round(sync_s, 5),
        "sync_bytes_per_s": round(nbytes / sync_s, 1),
        "raw_broadcast_seconds": round(raw_s, 5),
        "sync_efficiency": round(raw_s / sync_s, 4),
        "matmul_peak_flops_per_s": round(peak),
        "train_flops_per_s": round(train_rate),
        "train_vs_peak": round(train_rate / peak, 4),
        # the rates `rlsys plan --profile` reads: measured inside the short run
        "profile": {"gen_tokens_per_s": round(rates.gen_tokens_per_s, 1), "gen_params": rates.gen_params,
                    "train_flops_per_s": round(rates.train_flops_per_s), "score_flops_per_s": round(rates.score_flops_per_s),
                    "sync_bytes_per_s": round(rates.sync_bytes_per_s), "overhead_s": round(rates.overhead_s, 3)},
        "phase_share": share,
    }


def run(args) -> int:
    result = run_bench(args)
    stop_log_forwarding()
    print(f"rlsys bench: {result['kind']} machine ({result['cpu']}), fp32 matmul {result['fp32_matmul_gflops']} "
          f"GFLOP/s; `./run.sh demo` should take about {result['demo_estimate_s'] / 60:.0f} min once .venv exists "
          f"(estimated from the measured {result['demo_reference']['kind']} run: {result['demo_reference']['run']})")
    print(json.dumps(result))
    return 0
