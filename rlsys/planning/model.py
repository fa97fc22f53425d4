"""The throughput model behind `rlsys plan`: seconds per iteration of a workload on a split
of devices between rollout workers, teacher pool, learner and critic.

Each phase is work over a rate measured on one device:
  generation   sampled tokens / (decode tokens/s of one engine, scaled by model size) / R
  teacher      teacher forward FLOPs / forward FLOP/s / T
  reference,   policy forward FLOPs (each prompt once per group) / forward FLOP/s / L
  old policy
  train        policy training FLOPs x epochs x the fraction of samples that train / training FLOP/s / L
               (LoRA: the frozen weights' matmuls compute input gradients only)
  critic       critic forward + training FLOPs / the same rates / C
  sync         weight bytes / broadcast bytes/s
  overhead     a fixed per-iteration cost (Ray calls, rewards)
Synchronous: the phases run one after another, so an iteration is their sum. Asynchronous
(rollout.max_staleness >= 1): the rollout side (generation, teacher, rewards) of batch j+1
runs while the learner side (reference, old, critic, train) of batch j does, so an iteration
is the slower side plus the sync (a two-stage pipeline). Roles placed on the same device
share it: with one device everything is one sequential sum, whatever the mode."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from rlsys.models.flops import ModelShape, causal_pairs, forward_flops, training_flops


@dataclass(frozen=True)
class Profile:
    """Measured (or stated) rates of one device."""

    name: str
    gen_tokens_per_s: float  # decode tokens/s of one engine on a model of `gen_params` weights
    gen_params: float
    train_flops_per_s: float  # useful training FLOP/s of one learner device
    score_flops_per_s: float  # useful forward-only FLOP/s (reference, old, teacher, critic values)
    sync_bytes_per_s: float
    overhead_s: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Workload:
    """One iteration's work, from a config and the data's token counts."""

    prompts: int
    samples: int
    prompt_tokens: float  # mean per prompt
    completion_tokens: float  # mean per sample
    policy: ModelShape
    policy_params: float
    epochs: int = 1
    reference: bool = False
    old_pass: bool = False
    teacher: ModelShape | None = None
    teacher_prompt_tokens: float = 0.0
    critic: ModelShape | None = None
    weight_bytes: float = 0.0
    frozen_weights: bool = False  # LoRA
    trained_fraction: float = 1.0  # GRPO's algorithm.drop_uniform_groups trains only mixed groups


@dataclass(frozen=True)
class Split:
    rollout: int
    learner: int
    teacher: int = 0
    critic: int = 0

    def __str__(self) -> str:
        parts = [f"rollout {self.rollout}", f"learner {self.learner}"]
        parts += [f"teacher {self.teacher}"] if self.teacher else []
        parts += [f"critic {self.critic}"] if self.critic else []
        return ", ".join(parts)


ROLLOUT_SIDE = ("generation", "teacher")
LEARNER_SIDE = ("reference", "old_logprobs", "critic", "train")


def policy_pass(w: Workload) -> tuple[float, float, float]:
    """(tokens, scored, attention pairs) of one pass over the batch, each prompt once per group."""
    tokens = w.prompts * w.prompt_tokens + w.samples * w.completion_tokens
    pairs = w.prompts * causal_pairs(0, round(w.prompt_tokens)) + \
        w.samples * causal_pairs(round(w.prompt_tokens), round(w.completion_tokens))
    return tokens, w.samples * w.completion_tokens, pairs


def phase_work(w: Workload) -> dict[str, tuple[str, float]]:
    """Each phase's work and the rate it runs at: tokens for generation, FLOPs for passes,
    bytes for the sync."""
    passes = policy_pass(w)
    work = {"generation": ("gen", w.samples * w.completion_tokens),
            "train": ("train", w.epochs * w.trained_fraction * training_flops(w.policy, *passes, w.frozen_weights)),
            "sync": ("sync", w.weight_bytes)}
    if w.reference:
        work["reference"] = ("score", forward_flops(w.policy, *passes))
    if w.old_pass:
        work["old_logprobs"] = ("score", forward_flops(w.policy, *passes))
    if w.teacher is not None:
        t_len = w.teacher_prompt_tokens + w.completion_tokens
        work["teacher"] = ("score", forward_flops(w.teacher, w.samples * t_len, w.samples * w.completion_tokens,
                                                  w.samples * causal_pairs(0, round(t_len))))
    if w.critic is not None:
        c_passes = policy_pass(w)
        # its values (a forward) and its updates; both counted at the training rate
        work["critic"] = ("train", w.epochs * training_flops(w.critic, *c_passes) + forward_flops(w.critic, *c_passes))
    return work


def phase_seconds(w: Workload, p: Profile, split: Split) -> dict[str, float]:
    """Seconds of each phase with the split's devices per role (data parallel, linear)."""
    devices = {"generation": split.rollout, "teacher": split.teacher or split.rollout,
               "reference": split.learner, "old_logprobs": split.learner, "train": split.learner,
               "critic": split.critic or split.learner, "sync": 1}
    rates = {"gen": p.gen_tokens_per_s * p.gen_params / max(w.policy_params, 1.0),
             "train": p.train_flops_per_s, "score": p.score_flops_per_s, "sync": p.sync_bytes_per_s}
    return {phase: amount / rates[kind] / max(1, devices[phase]) for phase, (kind, amount) in phase_work(w).items()}


def iteration_seconds(seconds: dict[str, float], p: Profile, asynchronous: bool, shared_device: bool) -> float:
    """An iteration: the sum of the phases, or with asynchronous rollouts on separate devices
    the slower of the two pipeline stages plus the sync."""
    total = sum(seconds.values()) + p.overhead_s
    if not asynchronous or shared_device:
        return total
    rollout = sum(seconds.get(k, 0.0) for k in ROLLOUT_SIDE)
    learner = sum(seconds.get(k, 0.0) for k in LEARNER_SIDE)
    return max(rollout, learner) + seconds.get("sync", 0.0) + p.overhead_s


def splits(gpus: int, teacher: bool, critic: bool) -> list[Split]:
    """Every way to give each role at least one of `gpus` devices (one device: all share it)."""
    if gpus == 1:
        return [Split(1, 1, int(teacher), int(critic))]
    roles = 2 + int(teacher) + int(critic)
    out = []
    # a composition of `gpus` into `roles` positive parts: choose where to cut 1..gpus-1
    for cuts in combinations(range(1, gpus), roles - 1):
        r, lr, *rest = [b - a for a, b in zip((0, *cuts), (*cuts, gpus))]
        t = rest.pop(0) if teacher else 0
        c = rest.pop(0) if critic else 0
        out.append(Split(r, lr, t, c))
    return out


def best_split(w: Workload, p: Profile, gpus: int, asynchronous: bool) -> tuple[Split, float, dict[str, float]]:
    """The split with the fewest seconds per iteration."""
    scored = []
    for split in splits(gpus, w.teacher is not None, w.critic is not None):
        seconds = phase_seconds(w, p, split)
        scored.append((iteration_seconds(seconds, p, asynchronous, gpus == 1), split, seconds))
    best = min(scored, key=lambda s: s[0])
    return best[1], best[0], best[2]
