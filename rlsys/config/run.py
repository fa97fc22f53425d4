"""Run-level sections: `run` (folder, length, bounds, checkpoints, resume), `eval`, `ray`, `tracking`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlsys.config.base import Section

PHASES = ("start", "generation", "teacher", "reward", "train", "eval", "save")


class RunConfig(Section):
    """The run: its folder, length and seed, evaluations, bounds on each phase, checkpoints,
    resumption and recovery."""

    dir: str = "runs/latest"
    """The run folder: resolved config, metrics, samples, logs, checkpoints and the trained model.
    On a cluster of several machines, storage that every node sees."""
    seed: int = 0
    """Seeds the tasks (generation, held-out split), the prompt order and each request's sampling,
    so a resumed run draws what the uninterrupted one would."""
    iterations: int = Field(10, ge=0)
    """Iterations to run, each one batch sampled, scored and trained on (online DPO: rounds)."""
    schedule_iterations: int | None = Field(None, ge=1)
    """The iterations the learning-rate schedule spans (warmup, then cosine decay to
    `learner.min_lr_ratio`). Default: `run.iterations` when the run starts; a resumed run keeps
    the length its checkpoint was trained with, so raising `run.iterations` to extend a run
    continues the saved schedule (at its floor once it has ended). Set it to stretch the
    schedule over the longer run instead (the learning rate then moves from where it was)."""
    eval_every: int = Field(0, ge=0)
    """Evaluate on the held-out tasks every N iterations (0: only before and after)."""
    overwrite: bool = False
    """Empty a non-empty run.dir before starting (false: refuse it). A folder with checkpoints
    and `resume: auto` is refused either way: set `resume: never` to start afresh over it."""
    phase_timeout_s: float = Field(1800.0, gt=0.0)
    """The longest any phase (generation, teacher, reward, train, eval, save) may take
    before the run stops with an error naming the actor that did not answer."""
    phase_timeouts: dict[str, float] = Field(default_factory=dict)
    """Per-phase bounds that replace `phase_timeout_s`, e.g. {train: 3600, reward: 60}."""
    checkpoint_every: int = Field(0, ge=0)
    """Write a whole, resumable checkpoint every N iterations and at the end (0: none)."""
    keep_checkpoints: int = Field(2, ge=1)
    """The newest K checkpoints are kept (and the best one, with `best_by`)."""
    best_by: str | None = None
    """`eval/<metric>` (e.g. eval/accuracy): the checkpoint with the best value is kept too."""
    best_mode: Literal["max", "min"] = "max"
    """Whether a larger (`max`) or a smaller (`min`) value of `best_by` is better."""
    resume: str = "auto"
    """auto: continue from the newest whole checkpoint in run.dir when it has one; never: start
    afresh; or the path of a checkpoint (or of a run folder) to continue from."""
    stop_grace_s: float = Field(300.0, gt=0.0)
    """On SIGTERM or SIGINT (job stop, preemption, eviction) the run finishes the iteration in
    flight and checkpoints it within this many seconds, then exits with status 75; past it,
    the iteration is abandoned and the newest earlier checkpoint is the one to resume from.
    Set it below your scheduler's grace period (SLURM's KillWait, Kubernetes'
    terminationGracePeriodSeconds)."""
    max_failures: int = Field(0, ge=0)
    """Run-level recovery: when the run fails (a learner or critic rank died, its node was lost,
    an actor stopped answering), restart every role from the newest whole checkpoint inside the
    same job, up to this many times, and continue exactly as a run resumed from it would. Needs
    `run.checkpoint_every` > 0. Recoveries are counted in the summary (`recoveries`)."""
    resume_check_prompts: int = Field(8, ge=0)
    """On resume, greedy completions of the first N held-out prompts are written to
    eval_samples.jsonl, to compare with the run's outputs before it stopped."""

    @model_validator(mode="after")
    def _checks(self) -> "RunConfig":
        unknown = sorted(set(self.phase_timeouts) - set(PHASES))
        if unknown:
            raise ValueError(f"run.phase_timeouts: unknown phase(s) {unknown}; phases: {', '.join(PHASES)}")
        if any(v <= 0 for v in self.phase_timeouts.values()):
            raise ValueError("run.phase_timeouts: every bound must be > 0 seconds")
        if self.max_failures and not self.checkpoint_every:
            raise ValueError("run.max_failures restarts the run from its newest checkpoint: set run.checkpoint_every "
                             "> 0 too (e.g. 5)")
        if self.best_by is not None:
            if not self.best_by.startswith("eval/"):
                raise ValueError(f"run.best_by: {self.best_by!r} is not an eval metric; use eval/<metric>, "
                                 "e.g. eval/accuracy")
            if not self.checkpoint_every or not self.eval_every or self.checkpoint_every % self.eval_every:
                raise ValueError("run.best_by needs run.checkpoint_every to be a multiple of run.eval_every "
                                 "(both > 0), so every checkpoint has an evaluation to compare")
        return self

    def timeout(self, phase: str) -> float:
        return self.phase_timeouts.get(phase, self.phase_timeout_s)


class EvalConfig(Section):
    """The held-out evaluations of a run (before training, every run.eval_every iterations,
    after): their completion length and an optional evaluation suite."""

    max_new_tokens: int | None = None
    """Default: rollout.max_new_tokens."""
    suite: str | None = None
    """An `rlsys eval` suite (e.g. configs/eval/faroese.yaml) run on the rollout engines at every
    held-out evaluation (before, every run.eval_every, after); its metrics are logged as
    eval/<task>/<metric>. Perplexity is scored by the engines (vLLM prompt log-probs)."""
    suite_limit: int | None = Field(None, ge=1)
    """At most N examples per suite task during training."""


class RayConfig(Section):
    """The Ray cluster a run joins, or the local Ray it starts."""

    address: str | None = None
    """None: start a local Ray on 127.0.0.1 (or join the cluster of `ray job submit`)."""
    num_cpus: int | None = None
    """CPUs of the local Ray a run starts; None: this machine's cores or what the roles ask for,
    whichever is more (ignored when joining a cluster)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom resources of the local Ray a run starts (ignored when it joins a cluster), to try
    the roles' `resources` placement on one machine, e.g. {rollout_node: 2, learner_node: 1}."""


class TrackingConfig(Section):
    """Where metrics and progress go: the terminal, metrics.jsonl (always), Ray gauges,
    TensorBoard, Weights & Biases."""

    console: bool = True
    """Show the progress bar and the per-iteration lines on the terminal (false: neither)."""
    console_level: Literal["quiet", "verbose"] = "quiet"
    """quiet: the terminal shows rlsys's own lines (a header, one line per iteration, held-out
    results, errors) and the logs of vLLM, Ray, DeepSpeed and transformers go to `logs/` in the
    run folder; verbose: those logs reach the terminal too (`rlsys train --verbose`)."""
    ray_metrics: bool = True
    """Also set each metric as a Ray gauge (`ray_rlsys_*`, shown by the Ray dashboard)."""
    tensorboard: bool = False
    """Also write the metrics as TensorBoard scalars to `tensorboard/` in the run folder."""
    wandb_project: str | None = None
    """Also log the metrics and the config to this Weights & Biases project (None: off); a resumed
    run continues the same W&B run."""
    dump_batches: bool = False
    """Write every iteration's training batch to `batches/iter-NNNNNN.jsonl` in the run folder:
    per sample its tokens, sequence reward, weight version, and the per-token sampling, old and
    reference log-probs, values, advantages and returns the learner was given. For inspecting a
    run or recomputing what the algorithm did; about 100 bytes per token."""
