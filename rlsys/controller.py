"""The controller: the only place that knows the order of the steps of a run.

sample -> reward -> advantages -> learn -> sync -> log -> evaluate, every iteration,
then save. Everything that can be checked before an actor starts (config, model path,
data, reward functions, run folder) is checked first, in `rlsys.preparation`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from rlsys.algorithms.registry import build_algorithm
from rlsys.config import Config, dump_config
from rlsys.data.samplers import PromptSampler
from rlsys.distributed.calls import RunError, wait_all
from rlsys.distributed.weight_push import push_weights
from rlsys.distributed.weight_sync import choose_backend
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
from rlsys.types import PromptItem, Sample
from rlsys.observability.rank_stats import merge_rank_stats
from rlsys.rewards.registry import template_format_style
from rlsys.types import ScoredBatch
from rlsys.workers.rollout import group_temperatures

__all__ = ["Controller", "RunError", "check_same_vocabulary", "prepare", "train", "wait_all"]


class Controller:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.version = 0
        self.algorithm = build_algorithm(cfg)

    # ----- set-up ---------------------------------------------------------------------
    def start(self, prepared: Prepared) -> None:
        import ray

        from rlsys.distributed.actors import start_learners, start_reward_worker, start_rollout_workers
        from rlsys.distributed.cluster import init_ray

        cfg = self.cfg
        self.data = prepared
        init_ray(cfg.ray)
        steps_per_iter = cfg.learner.epochs * (cfg.batch_size // cfg.learner.mini_batch_size)
        self.rollout = start_rollout_workers(cfg, prepared.model_path)
        self.rollout_names = [f"rollout-{i}" for i in range(len(self.rollout))]
        self.learners = start_learners(cfg, prepared.model_path, steps_per_iter * cfg.run.iterations)
        self.learner_names = [f"learner-{i}" for i in range(len(self.learners))]
        self.reward = start_reward_worker(cfg)
        self.teachers, self.teacher_names = [], []
        bound = cfg.run.timeout("start")
        if prepared.teacher_path:
            from rlsys.distributed.actors import start_teachers, teacher_names

            self.teachers, self.teacher_names = start_teachers(cfg, prepared.teacher_path), teacher_names(cfg)
            wait_all([t.ping.remote() for t in self.teachers], self.teacher_names, "starting the teacher", bound)
        wait_all([w.ping.remote() for w in self.rollout], self.rollout_names, "starting vLLM engines", bound)
        self.engine_keys = wait_all([self.rollout[0].weight_keys.remote()], self.rollout_names[:1],
                                    "listing the engine's weights", bound)[0]
        host, port = wait_all([self.learners[0].sync_endpoint.remote()], ["learner-0"], "sync endpoint", bound)[0]
        backend = choose_backend(cfg.sync.backend, cfg.rollout.num_gpus, cfg.learner.num_gpus)
        world = 1 + len(self.rollout)
        args = (backend, host, port)
        refs = [lr.init_sync_group.remote(*args, world, cfg.sync.timeout_s) for lr in self.learners]
        refs += [w.init_sync_group.remote(*args, 1 + i, world, cfg.sync.timeout_s) for i, w in enumerate(self.rollout)]
        wait_all(refs, self.learner_names + self.rollout_names, "joining the weight-sync group", cfg.sync.timeout_s + 30)
        self.ray = ray

    # ----- phases ---------------------------------------------------------------------
    def generate(self, items: list[PromptItem], temperatures: list[float], max_tokens: int,
                 phase: str = "generation") -> list[Sample]:
        n = len(self.rollout)
        chunks = [(i * len(items) // n, (i + 1) * len(items) // n) for i in range(n)]
        refs = [
            w.generate.remote([it.prompt_ids for it in items[a:b]], temperatures, max_tokens, self.cfg.rollout.top_p, a)
            for w, (a, b) in zip(self.rollout, chunks)
        ]
        return [s for part in wait_all(refs, self.rollout_names, phase, self.cfg.run.timeout(phase)) for s in part]

    def teacher_scores(self, items: list[PromptItem], samples: list[Sample], by_token: bool) -> list[list[float]]:
        """Teacher log-probs of every sample, sent as many requests that the service batches."""
        from rlsys.workers.teacher import ScoreRequest

        requests = [
            ScoreRequest(items[s.prompt_index].question, s.text, s.completion_ids if by_token else None,
                         s.finish_reason == "stop", items[s.prompt_index].answer)
            for s in samples
        ]
        size = self.cfg.teacher.request_sequences
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        k = len(self.teachers)
        refs = [self.teachers[i % k].score.remote(c) for i, c in enumerate(chunks)]
        names = [self.teacher_names[i % k] for i in range(len(chunks))]
        return [lp for part in wait_all(refs, names, "teacher", self.cfg.run.timeout("teacher")) for lp in part]

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
            for t in self.teachers:
                t.take_stats.remote()  # eval traffic stays out of the next iteration's counters
        return metrics

    def sync(self) -> dict[str, float]:
        cfg = self.cfg
        stats = push_weights(self.learners, self.learner_names, self.rollout, self.rollout_names, cfg.sync,
                             cfg.model.dtype, self.version + 1, self.engine_keys)
        self.version += 1  # only once every engine has confirmed the new weights
        return stats

    def iteration(self, sampler: PromptSampler) -> tuple[dict[str, float], list[dict]]:
        cfg, t = self.cfg, {}
        items = [self.data.train[i] for i in sampler.next(cfg.rollout.prompts_per_iteration)]
        temps = group_temperatures(cfg.rollout.group_size, cfg.rollout.temperature, cfg.rollout.temperature_range)
        started = time.perf_counter()
        samples = self.generate(items, temps, cfg.rollout.max_new_tokens)
        t["time/generation"] = time.perf_counter() - started
        check_on_policy(samples, self.version)

        fields, distill, teacher = {}, {}, None
        if self.teachers:
            started = time.perf_counter()
            teacher = self.teacher_scores(items, samples, by_token=self.data.teacher_same_vocab)
            t["time/teacher"] = time.perf_counter() - started
            fields["teacher_logprobs"] = teacher
            distill = {f"distill/{k}": v for k, v in distill_metrics(teacher, [s.sampling_logprobs for s in samples]).items()}
            distill.update(self.teacher_stats(t["time/teacher"]))

        started = time.perf_counter()
        rewards, parts = wait_all([self.reward.score.remote(
            [items[s.prompt_index].prompt for s in samples], [s.text for s in samples],
            [items[s.prompt_index].answer for s in samples], **fields)], ["reward"], "reward",
            cfg.run.timeout("reward"))[0]
        train_items = self.algorithm.train_items(ScoredBatch(samples, rewards, cfg.rollout.group_size, teacher))
        t["time/reward"] = time.perf_counter() - started

        k = len(self.learners)
        shards = [train_items[r::k] for r in range(k)]
        per_rank = wait_all([lr.train_on_batch.remote(sh) for lr, sh in zip(self.learners, shards)],
                            self.learner_names, "train", cfg.run.timeout("train"))
        stats = merge_rank_stats(per_rank, cfg.lpt.coef)
        sync = self.sync()

        grouped = torch.tensor(rewards, dtype=torch.float64).view(-1, cfg.rollout.group_size)
        lengths = [len(s.completion_ids) for s in samples]
        metrics = {
            "reward/mean": float(grouped.mean()),
            "reward/std": float(grouped.std()),
            **{f"reward/{name}": sum(v) / len(v) for name, v in parts.items()},
            "rollout/accuracy": sum(parts.get("correctness", [0.0])) / len(samples),
            "rollout/mixed_groups": float((grouped.std(dim=1) > 0).float().mean()),
            "rollout/tokens": float(sum(lengths)),
            "rollout/mean_completion_tokens": sum(lengths) / len(lengths),
            "rollout/tokens_per_s": sum(lengths) / max(t["time/generation"], 1e-9),
            **distill, **stats, **sync, **t,
        }
        shown = [
            {"prompt_index": s.prompt_index, "answer": items[s.prompt_index].answer, "completion": s.text,
             "reward": r, "temperature": s.temperature}
            for s, r in zip(samples[: 2 * cfg.rollout.group_size], rewards)
        ]
        return metrics, shown

    def teacher_stats(self, seconds: float) -> dict[str, float]:
        per_teacher = wait_all([t.take_stats.remote() for t in self.teachers], self.teacher_names, "teacher",
                               self.cfg.run.timeout("teacher"))
        total = {k: sum(s[k] for s in per_teacher) for k in per_teacher[0]}
        return {
            "teacher/sequences_per_s": total["teacher/sequences"] / max(seconds, 1e-9),
            "teacher/mean_batch": total["teacher/sequences"] / max(1.0, total["teacher/batches"]),
            "teacher/queue_depth_max": max(s["teacher/queue_depth_max"] for s in per_teacher),
        }

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
        refs = [lr.save.remote(str(tmp), self.cfg.model.dtype) for lr in self.learners]
        wait_all(refs, self.learner_names, "save", self.cfg.run.timeout("save"))
        tmp.rename(out)

    def shutdown(self) -> None:
        import ray

        for handle in getattr(self, "rollout", []) + getattr(self, "learners", []):
            ray.kill(handle)
        if not self.cfg.teacher.detached:
            for handle in getattr(self, "teachers", []):
                ray.kill(handle)


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
