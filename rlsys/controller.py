"""The controller: the only place that knows the order of the steps of a run.

sample -> reward -> advantages -> learn -> sync -> log -> evaluate, every iteration,
then save. Everything that can be checked before an actor starts (config, model path,
data, reward functions, run folder) is checked first, in `rlsys.preparation`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlsys.algorithms.registry import build_algorithm
from rlsys.config import Config, dump_config
from rlsys.data.samplers import PromptSampler
from rlsys.distributed.calls import RunError, wait_all
from rlsys.distributed.groups import ActorGroup, TeacherPool
from rlsys.distributed.weight_push import init_weight_sync, push_weights
from rlsys.transport.weight_sync import choose_backend
from rlsys.eval.metrics import distill_metrics, task_metrics
from rlsys.observability.progress import ProgressDisplay
from rlsys.observability.trackers import (
    JsonlTracker,
    RayMetricsTracker,
    SampleLog,
    TensorBoardTracker,
    Trackers,
    WandbTracker,
)
from rlsys.preparation import Prepared, check_same_vocabulary, prepare, prepare_run_dir
from rlsys.observability.iteration_metrics import PhaseTimer, iteration_metrics, shown_samples
from rlsys.rewards.registry import template_format_style
from rlsys.types import PromptItem, Sample, ScoredBatch
from rlsys.workers.rollout import group_temperatures

__all__ = ["Controller", "RunError", "check_same_vocabulary", "prepare", "train", "wait_all"]


class Controller:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.version = 0
        self.algorithm = build_algorithm(cfg)
        self.teachers: TeacherPool | None = None

    # ----- set-up ---------------------------------------------------------------------
    def start(self, prepared: Prepared) -> None:
        from rlsys.distributed.actors import learner_group, rollout_pool, start_reward_worker, teacher_pool
        from rlsys.distributed.cluster import init_ray

        cfg, bound = self.cfg, self.cfg.run.timeout("start")
        self.data = prepared
        init_ray(cfg.ray)
        steps_per_iter = cfg.learner.epochs * (cfg.batch_size // cfg.learner.mini_batch_size)
        self.rollout = rollout_pool(cfg, prepared.model_path)
        self.learners = learner_group(cfg, prepared.model_path, steps_per_iter * cfg.run.iterations)
        self.reward = ActorGroup([start_reward_worker(cfg)], ["reward"])
        if prepared.teacher_path:
            self.teachers = teacher_pool(cfg, prepared.teacher_path)
            self.teachers.call("ping", what="starting the teacher", timeout_s=bound)
        self.rollout.call("ping", what="starting vLLM engines", timeout_s=bound)
        self.engine_keys = self.rollout.first("weight_keys", what="listing the engine's weights", timeout_s=bound)
        backend = choose_backend(cfg.sync.backend, cfg.rollout.num_gpus, cfg.learner.num_gpus)
        init_weight_sync(self.learners, self.rollout, backend, cfg.sync, bound)

    # ----- phases ---------------------------------------------------------------------
    def generate(self, items: list[PromptItem], temperatures: list[float], max_tokens: int,
                 phase: str = "generation") -> list[Sample]:
        return self.rollout.generate(items, temperatures, max_tokens, self.cfg.rollout.top_p, phase,
                                     self.cfg.run.timeout(phase))

    def teacher_scores(self, items: list[PromptItem], samples: list[Sample], by_token: bool) -> list[list[float]]:
        """Teacher log-probs of every sample, sent as many requests that the service batches."""
        from rlsys.workers.teacher import ScoreRequest

        requests = [
            ScoreRequest(items[s.prompt_index].question, s.text, s.completion_ids if by_token else None,
                         s.finish_reason == "stop", items[s.prompt_index].answer)
            for s in samples
        ]
        return self.teachers.score(requests, self.cfg.teacher.request_sequences, "teacher",
                                   self.cfg.run.timeout("teacher"))

    def rewards(self, items: list[PromptItem], samples: list[Sample], teacher: list[list[float]] | None):
        fields = {"teacher_logprobs": teacher} if teacher is not None else {}
        args = ([items[s.prompt_index].prompt for s in samples], [s.text for s in samples],
                [items[s.prompt_index].answer for s in samples])
        return self.reward.first("score", *args, **fields, what="reward", timeout_s=self.cfg.run.timeout("reward"))

    def evaluate(self) -> dict[str, float]:
        items = self.data.evaluation
        max_tokens = self.cfg.eval.max_new_tokens or self.cfg.rollout.max_new_tokens
        samples = self.generate(items, [0.0], max_tokens, "eval")
        metrics = task_metrics(
            [s.text for s in samples], [items[s.prompt_index].answer for s in samples],
            [len(s.completion_ids) for s in samples], template_format_style(self.cfg.data.template),
        )
        if self.teachers:
            # The reverse KL is an expectation under the student: sample at temperature 1.
            sampled = self.generate(items, [1.0], max_tokens, "eval")
            teacher = self.teacher_scores(items, sampled, by_token=self.data.teacher_same_vocab)
            metrics.update(distill_metrics(teacher, [s.sampling_logprobs for s in sampled]))
            # Reset the services' counters: eval traffic stays out of the next iteration's.
            self.teachers.call("take_stats", what="teacher", timeout_s=self.cfg.run.timeout("teacher"))
        return metrics

    def sync(self) -> dict[str, float]:
        stats = push_weights(self.learners, self.rollout, self.cfg.sync, self.cfg.model.dtype, self.version + 1,
                             self.engine_keys)
        self.version += 1  # only once every engine has confirmed the new weights
        return stats

    def iteration(self, sampler: PromptSampler) -> tuple[dict[str, float], list[dict]]:
        cfg, timer, distill, teacher = self.cfg, PhaseTimer(), {}, None
        items = [self.data.train[i] for i in sampler.next(cfg.rollout.prompts_per_iteration)]
        temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
        with timer("generation"):  # a group of samples per prompt from the rollout pool
            samples = self.generate(items, temps, cfg.rollout.max_new_tokens)
        check_on_policy(samples, self.version)
        if self.teachers:
            with timer("teacher"):  # the teacher's per-token log-probs of every sample
                teacher = self.teacher_scores(items, samples, by_token=self.data.teacher_same_vocab)
            measured = distill_metrics(teacher, [s.sampling_logprobs for s in samples])
            distill = {f"distill/{k}": v for k, v in measured.items()}
            distill.update(self.teachers.stats(timer.seconds["time/teacher"], cfg.run.timeout("teacher")))
        with timer("reward"):  # rule, teacher and user rewards, then the algorithm's training items
            rewards, parts = self.rewards(items, samples, teacher)
            train_items = self.algorithm.train_items(ScoredBatch(samples, rewards, cfg.rollout.group_size, teacher))
        # train: reference and old log-probs, then the optimiser steps, on every learner rank
        stats = self.learners.train(train_items, cfg.lpt.coef, cfg.run.timeout("train"))
        sync = self.sync()  # broadcast the new weights to every engine and verify them there
        metrics = iteration_metrics(samples, rewards, parts, cfg.rollout.group_size, timer.seconds, distill, stats, sync)
        return metrics, shown_samples(items, samples, rewards, 2 * cfg.rollout.group_size)

    # ----- the run --------------------------------------------------------------------
    def run(self, run_dir: Path) -> dict:
        cfg = self.cfg
        started = time.perf_counter()
        sinks = [JsonlTracker(run_dir / "metrics.jsonl")]
        if cfg.tracking.ray_metrics:
            sinks.append(RayMetricsTracker(run_dir.name))
        if cfg.tracking.tensorboard:
            sinks.append(TensorBoardTracker(run_dir / "tensorboard"))
        if cfg.tracking.wandb_project:
            sinks.append(WandbTracker(cfg.tracking.wandb_project, run_dir, cfg.model_dump(mode="json")))
        trackers = Trackers(sinks)
        sample_log = SampleLog(run_dir / "samples.jsonl")
        sampler = PromptSampler(len(self.data.train), cfg.run.seed)
        with ProgressDisplay(cfg.run.iterations, enabled=cfg.tracking.console) as progress:
            progress.phase("eval (before)")
            eval_before = self.evaluate()
            progress.note(f"held-out before: {json.dumps(eval_before)}")
            for it in range(1, cfg.run.iterations + 1):
                t0 = time.perf_counter()
                metrics, shown = self.iteration(sampler)
                sample_log.log(it, shown)
                if cfg.run.eval_every and it % cfg.run.eval_every == 0 and it != cfg.run.iterations:
                    metrics.update({f"eval/{k}": v for k, v in self.evaluate().items()})
                metrics["time/iteration"] = time.perf_counter() - t0
                trackers.log(it, metrics)
                progress.advance(metrics)
            progress.phase("eval (after)")
            eval_after = self.evaluate()
            progress.note(f"held-out after: {json.dumps(eval_after)}")
        trackers.close()
        sample_log.close()
        self.save_model(run_dir / "model")
        summary = {
            "eval_before": eval_before,
            "eval_after": eval_after,
            "iterations": cfg.run.iterations,
            "wall_seconds": time.perf_counter() - started,
            "final_weight_version": self.version,
            "model_dir": str(run_dir / "model"),
        }
        write_json_atomic(run_dir / "summary.json", summary)
        return summary

    def save_model(self, out: Path) -> None:
        tmp = out.with_name(out.name + ".partial")
        self.learners.call("save", str(tmp), self.cfg.model.dtype, what="save", timeout_s=self.cfg.run.timeout("save"))
        tmp.rename(out)

    def shutdown(self) -> None:
        for group in (getattr(self, "rollout", None), getattr(self, "learners", None)):
            if group is not None:
                group.kill()
        if self.teachers is not None and not self.cfg.teacher.detached:
            self.teachers.kill()


def check_on_policy(samples: list[Sample], version: int) -> None:
    """Synchronous RL trains only on samples of the current weights: refuse any other."""
    stale = sorted({s.weight_version for s in samples} - {version})
    if stale:
        raise RunError(f"off-policy samples: weight versions {stale} while the learner is at {version}; "
                       "an engine did not take the last weight sync")


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.rename(path)


def train(cfg: Config) -> dict:
    prepared = prepare(cfg)
    run_dir = prepare_run_dir(cfg)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    controller = Controller(cfg)
    try:
        controller.start(prepared)
        return controller.run(run_dir)
    finally:
        controller.shutdown()
