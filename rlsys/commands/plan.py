"""`rlsys plan CONFIG --gpus N`: predicted seconds per iteration of a config, per phase, for
the best split of N devices between roles, synchronous and asynchronous; with `--check RUN`
the prediction for one device is set against what that run measured. The last line
printed is one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

from rlsys.commands.arguments import config_arguments
from rlsys.config import load_config
from rlsys.errors import ConfigError

NAME, HELP = "plan", "predicted seconds per iteration and the best split of N devices (JSON last)"


def add_arguments(p) -> None:
    config_arguments(p)
    p.add_argument("--gpus", type=int, default=1, help="devices to split between the roles")
    p.add_argument("--profile", default=None, help="`rlsys bench` output, or a JSON profile of your devices")
    p.add_argument("--calibrate", default=None, help="a finished run whose measured rates to use")
    p.add_argument("--check", default=None, help="a finished run of CONFIG to compare the prediction with")
    p.add_argument("--completion-tokens", type=float, default=None,
                   help="mean completion length (default: --check's, else rollout.max_new_tokens)")
    p.add_argument("--kept-fraction", type=float, default=None,
                   help="with algorithm.drop_uniform_groups, the fraction of samples that train "
                        "(default: --check's median, else 1)")


def choose_profile(args, w):
    from rlsys.planning.inputs import profile_from_bench, profile_from_file, profile_from_run

    if args.calibrate:
        return profile_from_run(Path(args.calibrate), w)
    if args.profile:
        text = Path(args.profile).read_text()
        return profile_from_bench(Path(args.profile), w.policy_params) if "rollout_tokens_per_s" in text \
            else profile_from_file(Path(args.profile))
    raise ConfigError("rlsys plan needs rates: --profile BENCH.json (the last line of `rlsys bench --model ...`) "
                     "or a profile file of your devices, or --calibrate RUN_DIR (rates a finished run measured)")


def run_plan(args) -> dict:
    from rlsys.planning.inputs import kept_fraction, mean_completion_tokens, measured_phases, workload
    from rlsys.planning.model import Split, best_split, iteration_seconds, phase_seconds

    cfg = load_config(args.config, args.overrides)
    completion = args.completion_tokens or (mean_completion_tokens(Path(args.check)) if args.check else None)
    kept = args.kept_fraction if args.kept_fraction is not None else \
        (kept_fraction(Path(args.check)) if args.check else None)
    drops = getattr(cfg.algorithm, "drop_uniform_groups", False)
    if kept is not None and not 0 < kept <= 1:
        raise ConfigError(f"--kept-fraction {kept}: a fraction of the samples, above 0 and at most 1")
    w = workload(cfg, completion, kept if drops and kept is not None else 1.0)
    profile = choose_profile(args, w)
    print(f"rlsys plan: {args.config}: {w.prompts} prompts x {w.samples // w.prompts} samples, prompt "
          f"{w.prompt_tokens:.0f} + completion {w.completion_tokens:.0f} tokens, policy {w.policy_params / 1e6:.0f}M "
          f"weights; rates from {profile.source}")
    if drops:
        print(f"  algorithm.drop_uniform_groups: {w.trained_fraction:.0%} of the samples train"
              + ("" if kept is not None else " (assumed; --kept-fraction or --check RUN gives a measured one)"))
    out: dict = {"config": str(args.config), "gpus": args.gpus, "profile": profile.source,
                 "workload": {"prompts": w.prompts, "samples": w.samples, "prompt_tokens": round(w.prompt_tokens, 1),
                              "completion_tokens": round(w.completion_tokens, 1)}}
    for mode, asynchronous in (("synchronous", False), ("asynchronous", True)):
        split, seconds, phases = best_split(w, profile, args.gpus, asynchronous)
        out[mode] = {"split": split.__dict__, "seconds_per_iteration": round(seconds, 2),
                     "phases": {k: round(v, 2) for k, v in phases.items()}}
        shown = ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        print(f"  {mode:<12} {seconds:8.1f} s/iteration  [{split}]  ({shown}; overhead {profile.overhead_s:.1f})")
    if args.check:
        one = phase_seconds(w, profile, Split(1, 1, int(w.teacher is not None), int(w.critic is not None)))
        predicted = iteration_seconds(one, profile, cfg.rollout.max_staleness > 0, True)
        measured = measured_phases(Path(args.check))
        error = predicted / measured["iteration"] - 1.0
        out["check"] = {"run": args.check, "predicted_s": round(predicted, 2), "measured_s": round(measured["iteration"], 2),
                        "relative_error": round(error, 4), "measured_phases": {k: round(v, 2) for k, v in measured.items()}}
        print(f"  check        predicted {predicted:.1f} s/iteration on one device, {args.check} measured "
              f"{measured['iteration']:.1f} ({error:+.1%})")
    return out


def run(args) -> int:
    print(json.dumps(run_plan(args)))
    return 0
