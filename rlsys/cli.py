"""Command line: `rlsys train | validate | eval | plot | compare | make-pairs | make-teacher | seeds | bench | plan | check-sync |
adapt-tokenizer | extract-faroese | scale | teacher-start | teacher-stop`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlsys.config import ConfigError, dump_config, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlsys", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "run a training job"), ("validate", "print the resolved config or its errors")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("config", help="YAML config file")
        s.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    m = sub.add_parser("make-pairs", help="preference rows (best vs worst of each sampled group) as JSONL")
    m.add_argument("config", help="YAML config file (model, data, rollout, reward)")
    m.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    m.add_argument("--out", required=True, help="JSONL file to write (must not exist)")
    m.add_argument("--prompts", type=int, default=None, help="prompts of data to sample (default: all)")
    t = sub.add_parser("make-teacher", help="fine-tune model.path on worked solutions of data: a task teacher")
    t.add_argument("config", help="YAML config file (model, data: the student's run config)")
    t.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    t.add_argument("--out", required=True, help="model folder to write (must not exist)")
    t.add_argument("--steps", type=int, default=150)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--batch-size", type=int, default=16)
    sd = sub.add_parser("seeds", help="run CONFIG once per seed; mean and spread of the held-out results")
    sd.add_argument("config", help="YAML config file")
    sd.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    sd.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sd.add_argument("--out", required=True, help="folder for the runs (seed-S) and seeds.md / seeds.json")
    b = sub.add_parser("bench", help="measure rollout and weight-sync efficiency (last line: JSON)")
    b.add_argument("--model", default="tiny-random", help="model path or built-in name (default: tiny-random)")
    b.add_argument("--prompts", type=int, default=32)
    b.add_argument("--group-size", type=int, default=4)
    b.add_argument("--max-new-tokens", type=int, default=64)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--dtype", default="auto", help="auto: bf16 on CPUs with AVX-512, else fp32")
    pn = sub.add_parser("plan", help="predicted seconds per iteration and the best split of N devices (JSON last)")
    pn.add_argument("config", help="YAML config file")
    pn.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    pn.add_argument("--gpus", type=int, default=1, help="devices to split between the roles")
    pn.add_argument("--profile", default=None, help="`rlsys bench` output, or a JSON profile of your devices")
    pn.add_argument("--calibrate", default=None, help="a finished run whose measured rates to use")
    pn.add_argument("--check", default=None, help="a finished run of CONFIG to compare the prediction with")
    pn.add_argument("--completion-tokens", type=float, default=None,
                    help="mean completion length (default: --check's, else rollout.max_new_tokens)")
    c = sub.add_parser("check-sync", help="check the weight-sync transport (gloo or NCCL) on this machine (JSON)")
    c.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    c.add_argument("--cuda", action="store_true", help="gloo with CUDA tensors (ranks sharing one GPU)")
    c.add_argument("--ranks", type=int, default=2, help="processes: rank 0 sends, the others receive")
    c.add_argument("--mb", type=float, default=256.0, help="MiB of model-shaped bf16 tensors to send")
    c.add_argument("--bucket-mb", type=float, default=64.0)
    c.add_argument("--timeout-s", type=float, default=10.0)
    a = sub.add_parser("adapt-tokenizer", help="add a language's frequent subwords as tokens; write a resized model")
    a.add_argument("--model", required=True, help="model path or built-in name")
    a.add_argument("--words", default="/usr/share/dict/faroese", help="word list, one word per line")
    a.add_argument("--num-tokens", type=int, default=128)
    a.add_argument("--max-words", type=int, default=50000, help="words sampled from the list")
    a.add_argument("--out", required=True, help="output model folder (must not exist)")
    e = sub.add_parser("eval", help="evaluate one or more models on a suite of tasks (table, eval.json)")
    e.add_argument("suite", help="suite YAML (configs/eval_gsm8k.yaml, configs/eval_faroese.yaml)")
    e.add_argument("--model", action="append", required=True,
                   help="built-in name, HF folder, run folder, PEFT adapter folder, or ADAPTER@BASE (repeatable)")
    e.add_argument("--out", default=None, help="output folder (default: runs/eval-<suite name>)")
    e.add_argument("--limit", type=int, default=None, help="at most N examples per task")
    e.add_argument("--workers", type=int, default=None, help="vLLM workers (default: the suite's `workers`)")
    e.add_argument("--dtype", default="auto", help="auto: bf16 on GPUs and AVX-512 CPUs, else fp32")
    e.add_argument("--max-model-len", type=int, default=2048)
    e.add_argument("--gpus", type=float, default=0.0, help="GPUs per vLLM worker and for the scorer")
    e.add_argument("--seed", type=int, default=0)
    pl = sub.add_parser("plot", help="PNG training curves of one or more runs (overlaid)")
    pl.add_argument("runs", nargs="+", help="run folders (with metrics.jsonl)")
    pl.add_argument("--out", default=None, help="PNG path (default: FIRST_RUN/plots/curves.png)")
    cp = sub.add_parser("compare", help="held-out metrics of several runs side by side")
    cp.add_argument("runs", nargs="+", help="run folders")
    xf = sub.add_parser("extract-faroese", help="English->Faroese phrase pairs from Debian's message catalogues")
    xf.add_argument("--out", required=True, help="JSONL file to write (must not exist)")
    sc = sub.add_parser("scale", help="add or remove rollout workers of a running job (between its iterations)")
    sc.add_argument("run", help="the run folder (it holds control.json) or the run's name (its folder's name)")
    sc.add_argument("--rollout", type=int, required=True, help="rollout workers wanted")
    sc.add_argument("--address", default=None, help="the job's Ray cluster (default: RAY_ADDRESS, else control.json)")
    for name, help_text in (("teacher-start", "start the named, detached teacher pool of CONFIG and exit"),
                            ("teacher-stop", "stop the named teacher pool of CONFIG")):
        t = sub.add_parser(name, help=help_text)
        t.add_argument("config", help="YAML config file with teacher.name set")
        t.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    return p


def _teacher_command(args) -> int:
    from rlsys.distributed.actors import start_teachers, stop_teachers, teacher_names
    from rlsys.distributed.cluster import init_ray

    cfg = load_config(args.config, args.overrides)
    if not cfg.teacher.name or not cfg.teacher.path:
        raise ConfigError(f"{args.command} needs teacher.path and teacher.name in {args.config}")
    init_ray(cfg.ray)
    if args.command == "teacher-stop":
        print(json.dumps({"stopped": stop_teachers(cfg)}))
        return 0
    from rlsys.controller import wait_all
    from rlsys.models.catalog import resolve_model

    cfg.teacher.detached = True
    handles = start_teachers(cfg, resolve_model(cfg.teacher.path))
    names = teacher_names(cfg)
    print(json.dumps({"started": wait_all([h.ping.remote() for h in handles], names, "starting the teacher")}))
    return 0


def _readable_tokens(model_dir: str, tokens: list[str]) -> list[str]:
    """Byte-level BPE spells 'ð' as 'Ã°'; show the text each new token stands for."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    return [tok.convert_tokens_to_string([t]) for t in tokens]


def _stop_log_forwarding() -> None:
    """Shut Ray down so that no actor log line forwarded to stdout lands after the result."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    sys.stderr.flush()
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    from rlsys.distributed.cluster import keep_local_ray_on_loopback

    keep_local_ray_on_loopback()
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may also follow options (`make-pairs CONFIG --out F a.b=1`).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "validate":
            cfg = load_config(args.config, args.overrides)
            print(dump_config(cfg), end="")
            return 0
        if args.command == "train":
            from rlsys.controller import train

            cfg = load_config(args.config, args.overrides)
            summary = train(cfg)
            _stop_log_forwarding()
            print(json.dumps({"run_dir": cfg.run.dir, "eval_before": summary["eval_before"],
                              "eval_after": summary["eval_after"], "wall_seconds": summary["wall_seconds"]}))
            return 0
        if args.command == "make-pairs":
            from rlsys.make_pairs import make_pairs

            result = make_pairs(load_config(args.config, args.overrides), args.out, args.prompts)
            _stop_log_forwarding()
            print(json.dumps(result))
            return 0
        if args.command == "seeds":
            from rlsys.seeds import run_seeds

            load_config(args.config, args.overrides)  # a bad config fails here, not in the first seed's process
            print(json.dumps(run_seeds(args.config, args.overrides, args.seeds, args.out)))
            return 0
        if args.command == "make-teacher":
            from rlsys.make_teacher import make_teacher

            result = make_teacher(load_config(args.config, args.overrides), args.out, args.steps, args.lr,
                                  args.batch_size)
            print(json.dumps(result))
            return 0
        if args.command == "adapt-tokenizer":
            from rlsys.models.catalog import resolve_model
            from rlsys.models.tokenizers import adapt_model, read_words

            words = read_words(args.words, args.max_words)
            result = adapt_model(resolve_model(args.model), words, args.num_tokens, args.out)
            print(json.dumps({"out": args.out, "new_tokens": len(result.new_tokens),
                              "tokens_per_word_before": result.tokens_per_word_before,
                              "tokens_per_word_after": result.tokens_per_word_after,
                              "examples": _readable_tokens(args.out, result.new_tokens[:20])}, ensure_ascii=False))
            return 0
        if args.command == "eval":
            from rlsys.eval.runner import run_eval

            summary = run_eval(args.suite, args.model, args.out, args.limit, args.workers, args.dtype,
                               args.max_model_len, args.gpus, args.seed)
            _stop_log_forwarding()
            print(json.dumps({"eval_json": str(Path(summary["out"]) / "eval.json"),
                              "wall_seconds": summary["wall_seconds"]}))
            return 0
        if args.command == "plot":
            from rlsys.observability.plots import plot_runs

            print(json.dumps({"png": str(plot_runs(args.runs, args.out))}))
            return 0
        if args.command == "compare":
            from rich.console import Console

            from rlsys.observability.compare import compare_table

            Console().print(compare_table(args.runs))
            return 0
        if args.command == "extract-faroese":
            from rlsys.data.faroese_messages import write_pairs

            print(json.dumps(write_pairs(args.out)))
            return 0
        if args.command == "scale":
            from rlsys.distributed.control import request_scale

            print(request_scale(args.run, args.rollout, args.address))
            return 0
        if args.command in ("teacher-start", "teacher-stop"):
            return _teacher_command(args)
        if args.command == "check-sync":
            from rlsys.transport.sync_check import check_sync

            print(json.dumps(check_sync(args.backend, args.cuda, args.ranks, args.mb, args.bucket_mb, args.timeout_s)))
            return 0
        if args.command == "plan":
            from rlsys.planning.plan import run_plan

            print(json.dumps(run_plan(args)))
            return 0
        if args.command == "bench":
            from rlsys.bench import run_bench

            result = run_bench(args)
            _stop_log_forwarding()
            print(json.dumps(result))
            return 0
    except ConfigError as exc:
        print(f"rlsys: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the known user-facing errors carry their own message
        from rlsys.controller import RunError
        from rlsys.data.sources import DataError
        from rlsys.models.catalog import ModelNotFoundError
        from rlsys.rewards.registry import RewardError

        if isinstance(exc, (RunError, DataError, ModelNotFoundError, RewardError, FileNotFoundError, FileExistsError)):
            print(f"rlsys: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        _stop_local_ray()
    return 0


def _stop_local_ray() -> None:
    """A local Ray this command started ends with it, whether it succeeded or failed: its
    raylet, GCS and agents would otherwise linger as orphans for minutes."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()
