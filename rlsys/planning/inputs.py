"""What `rlsys plan` models: the workload of a config (batch, token counts from its data,
model shapes from their configs, built on the meta device: no weights loaded) and the rates
of a device (from `rlsys bench` JSON, from a finished run's metrics, or a profile file)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from rlsys.algorithms.registry import build_algorithm, old_policy_source
from rlsys.config import Config
from rlsys.errors import ConfigError
from rlsys.models.flops import ModelShape, forward_flops
from rlsys.observability.plots import read_metrics
from rlsys.planning.model import Profile, Workload, policy_pass


def model_shape(path: str) -> tuple[ModelShape, float]:
    """The shape and weight count of a model folder, without loading its weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return ModelShape.of(model), float(sum(p.numel() for p in model.parameters()))


def workload(cfg: Config, completion_tokens: float | None = None, trained_fraction: float = 1.0) -> Workload:
    """One iteration of `cfg`; completion length: given, else `rollout.max_new_tokens` (the
    most it can be)."""
    from transformers import AutoTokenizer

    from rlsys.models.catalog import resolve_model
    from rlsys.preparation import training_prompts

    model_path, items = training_prompts(cfg)
    prompt_tokens = statistics.fmean(len(it.prompt_ids) for it in items)
    shape, params = model_shape(model_path)
    algo = build_algorithm(cfg)
    teacher, teacher_prompt = None, 0.0
    if cfg.teacher.path:
        teacher_path = resolve_model(cfg.teacher.path)
        teacher, _ = model_shape(teacher_path)
        tok = AutoTokenizer.from_pretrained(teacher_path)
        template = cfg.teacher.question_template or "{question}"
        filled = [template.format(question=it.question, answer=it.answer, raw_question=it.raw_question)
                  for it in items[:64]]
        teacher_prompt = statistics.fmean(len(tok(text).input_ids) for text in filled)
    critic = None
    if algo.needs_critic:
        critic = model_shape(resolve_model(cfg.critic.path) if cfg.critic.path else model_path)[0]
    bytes_per_weight = 4 if cfg.model.dtype == "float32" else 2
    return Workload(
        prompts=cfg.rollout.prompts_per_iteration, samples=cfg.batch_size, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens or float(cfg.rollout.max_new_tokens), policy=shape, policy_params=params,
        epochs=cfg.learner.epochs, reference=algo.needs_reference, old_pass=old_policy_source(cfg) == "learner",
        teacher=teacher, teacher_prompt_tokens=teacher_prompt, critic=critic, weight_bytes=params * bytes_per_weight,
        frozen_weights=cfg.model.lora is not None, trained_fraction=trained_fraction)


def profile_from_bench(path: Path, params: float) -> Profile:
    """Rates from `rlsys bench`'s JSON line: those measured inside its short training run
    (`profile`), else its standalone measurements (the given model weight count)."""
    b = json.loads(Path(path).read_text().strip().splitlines()[-1])
    source = f"rlsys bench ({b.get('model')})"
    if "profile" in b:
        return Profile(f"bench {path}", **b["profile"], source=source)
    return Profile(f"bench {path}", b["rollout_tokens_per_s"], params, b["train_flops_per_s"],
                   b["train_flops_per_s"], b["sync_bytes_per_s"], source=source)


def profile_from_run(run_dir: Path, w: Workload) -> Profile:
    """Rates measured by a finished run (medians over its iterations after the first): its
    generation tokens/s, training FLOP/s, forward FLOP/s of its scoring passes, sync bytes/s,
    and what an iteration took beyond its phases."""
    rows = steady_rows(run_dir)
    med = lambda key: statistics.median(r[key] for r in rows if key in r)  # noqa: E731
    passes = policy_pass(w)
    score_rates = []
    for r in rows:
        flops, seconds = 0.0, 0.0
        if "time/logprobs" in r:
            flops += forward_flops(w.policy, *passes) * (int(w.reference) + int(w.old_pass))
            seconds += r["time/logprobs"]
        if flops and seconds:
            score_rates.append(flops / seconds)
    train = med("train/flops_per_s")
    phases = ("generation", "teacher", "reward", "logprobs", "critic_values", "train", "sync")
    overhead = statistics.median(r["time/iteration"] - sum(r.get(f"time/{p}", 0.0) for p in phases) for r in rows)
    return Profile(f"run {run_dir}", med("rollout/tokens_per_s"), w.policy_params, train,
                   statistics.median(score_rates) if score_rates else train, med("sync/bytes_per_s"),
                   max(0.0, overhead), source=f"measured by {run_dir}")


def measured_phases(run_dir: Path) -> dict[str, float]:
    """A run's median seconds per phase and per iteration (after its first iteration)."""
    rows = steady_rows(run_dir)
    keys = {k for r in rows for k in r if k.startswith("time/")} - {"time/run", "time/batch_wait"}
    return {k[5:]: statistics.median(r.get(k, 0.0) for r in rows) for k in sorted(keys)}


def kept_fraction(run_dir: Path) -> float | None:
    """The median fraction of samples a run trained on (`algorithm.drop_uniform_groups`), or None."""
    kept = [r["train/kept_fraction"] for r in steady_rows(run_dir) if "train/kept_fraction" in r]
    return statistics.median(kept) if kept else None


def mean_completion_tokens(run_dir: Path) -> float:
    return statistics.fmean(r["rollout/mean_completion_tokens"] for r in read_metrics(Path(run_dir)))


def steady_rows(run_dir: Path) -> list[dict]:
    """A run's metric rows after its first iteration (which warms up), or all of one."""
    rows = read_metrics(Path(run_dir))
    return rows[1:] or rows


def profile_from_file(path: Path) -> Profile:
    """A profile written by hand (keys of `Profile`), e.g. rates measured on a user's GPUs."""
    data = json.loads(Path(path).read_text())
    try:
        return Profile(**{"name": str(path), **data})
    except TypeError as exc:
        raise ConfigError(f"{path}: a profile needs gen_tokens_per_s, gen_params, train_flops_per_s, "
                         f"score_flops_per_s, sync_bytes_per_s (optional overhead_s, source): {exc}") from None
