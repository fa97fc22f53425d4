"""The controller: starts the roles of a run (rollout pool, learner and critic groups, teacher
pool, reward worker), offers each phase as one call, and hands itself to the training mode's
loop (`rlsys.loops`), which knows the order of the phases. Everything that can be checked
before an actor starts (config, model paths, data, reward functions, run folder) is checked
first, in `rlsys.preparation`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rlsys.algorithms.registry import build_algorithm, old_policy_source
from rlsys.checkpoints import read_state, resume_point, set_aside_newer, whole_checkpoints
from rlsys.config import Config, dump_config
from rlsys.distributed.calls import RunError, wait_all
from rlsys.distributed.groups import ActorGroup, CriticGroup, TeacherPool
from rlsys.transport.weight_sync import choose_backend
from rlsys.data.samplers import request_seed
from rlsys.eval.metrics import distill_metrics, task_metrics
from rlsys.loops import preference, sync_rl
from rlsys.preparation import Prepared, check_same_vocabulary, prepare, prepare_run_dir
from rlsys.rewards.registry import template_format_style
from rlsys.types import PromptItem, Sample, ScoreRequest

__all__ = ["Controller", "RunError", "check_same_vocabulary", "prepare", "train", "wait_all"]


EVAL_DRAWS = -1  # the "iteration" of the held-out samples' seeds: never a training iteration

class Controller:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.version = 0
        self.algorithm = build_algorithm(cfg)
        self.teachers: TeacherPool | None = None
        self.critics: CriticGroup | None = None
        self._teacher_accuracy: dict[str, float] | None = None  # measured at the first evaluation
        self.resume_from: Path | None = None
        self.schedule: dict[str, int] = {}

    # ----- set-up ---------------------------------------------------------------------
    def start(self, prepared: Prepared) -> None:
        """Every role of a training run."""
        self.start_sampling(prepared)
        self.start_training(prepared)

    def start_sampling(self, prepared: Prepared) -> None:
        """The rollout pool and the reward worker (all that `rlsys make-pairs` needs)."""
        from rlsys.distributed.actors import rollout_pool, start_reward_worker
        from rlsys.distributed.cluster import init_ray, role_cpus

        self.data = prepared
        init_ray(self.cfg.ray, role_cpus(self.cfg))
        self.rollout = rollout_pool(self.cfg, prepared.model_path)
        self.reward = ActorGroup([start_reward_worker(self.cfg)], ["reward"])

    def schedule_steps(self, prepared: Prepared) -> dict[str, int]:
        """Optimiser steps the learning-rate schedules span (learner, critic): what the
        checkpoint a run resumes from saved, unless `run.schedule_iterations` is set."""
        saved = read_state(self.resume_from).get("schedule_steps") if self.resume_from else None
        steps = schedule_steps(self.cfg, len(prepared.pairs.train) if prepared.pairs else 0,
                               self.algorithm.needs_critic)
        if saved and self.cfg.run.schedule_iterations is None:
            if saved != steps:
                print(f"rlsys: the learning-rate schedule keeps the length it was saved with ({saved} optimiser "
                      f"steps, not {steps}); set run.schedule_iterations to stretch it over the run", flush=True)
            return saved
        return steps

    def start_training(self, prepared: Prepared) -> None:
        """Learner ranks, critic, teachers, and the weight-sync group with the engines."""
        from rlsys.distributed.actors import critic_group, learner_group, teacher_pool

        cfg, bound = self.cfg, self.cfg.run.timeout("start")
        self.schedule = self.schedule_steps(prepared)
        self.learners = learner_group(cfg, prepared.model_path, self.schedule["learner"])
        if self.algorithm.needs_critic:
            self.critics = critic_group(cfg, prepared.critic_path or prepared.model_path, self.schedule["critic"])
            self.critics.call("ping", what="starting the critic", timeout_s=bound)
        if prepared.teacher_path:
            self.teachers = teacher_pool(cfg, prepared.teacher_path)
            self.teachers.call("ping", what="starting the teacher", timeout_s=bound)
        backend = choose_backend(cfg.sync.backend, cfg.rollout.num_gpus, cfg.learner.num_gpus)
        self.rollout.attach(self.learners, backend, cfg.sync, cfg.model.dtype, cfg.rollout.max_staleness > 0)
        from rlsys.distributed.control import start_control

        self.control = start_control(Path(cfg.run.dir))

    # ----- phases ---------------------------------------------------------------------
    def generate(self, items: list[PromptItem], temperatures: list[float], max_tokens: int,
                 phase: str = "generation", seeds: list[int] | None = None) -> list[Sample]:
        return self.rollout.generate(items, temperatures, max_tokens, self.cfg.rollout.top_p, phase,
                                     self.cfg.run.timeout(phase), seeds, self.cfg.rollout.top_k)

    def old_and_reference(self, samples: list[Sample], timer):
        """The ratio's denominator and the reference's log-probs, as far as a pass is needed:
        none when the old policy is the training pass's own (one step per batch) or vLLM's."""
        source, needs_ref = old_policy_source(self.cfg), self.algorithm.needs_reference
        old = [s.sampling_logprobs for s in samples] if source == "sampler" else None
        if source != "learner" and not needs_ref:
            return old, None, {}
        with timer("logprobs"):  # reference (and old-policy) log-probs on every learner rank
            learner_old, ref, scored = self.learners.score(samples, needs_ref, source == "learner",
                                                           self.cfg.run.timeout("train"))
        return (learner_old if source == "learner" else old), ref, scored

    def teacher_scores(self, items: list[PromptItem], samples: list[Sample], by_token: bool,
                       tag: str = "train") -> list[list[float]]:
        """Teacher log-probs of every sample, sent as many requests that the service batches."""
        requests = [
            ScoreRequest(items[s.prompt_index].question, s.text, s.completion_ids if by_token else None,
                         s.finish_reason == "stop", items[s.prompt_index].answer, raw_question(items[s.prompt_index]))
            for s in samples
        ]
        return self.teachers.score(requests, self.cfg.teacher.request_sequences, "teacher",
                                   self.cfg.run.timeout("teacher"), tag)

    def distill_metrics(self, teacher: list[list[float]], samples: list[Sample], seconds: float) -> dict[str, float]:
        """How far the student is from the teacher on these samples, and the services' throughput."""
        measured = distill_metrics(teacher, [s.sampling_logprobs for s in samples])
        return {**{f"distill/{k}": v for k, v in measured.items()},
                **self.teachers.stats(seconds, self.cfg.run.timeout("teacher"))}

    def rewards(self, items: list[PromptItem], samples: list[Sample], teacher: list[list[float]] | None):
        fields = {"questions": [items[s.prompt_index].question for s in samples]}
        if teacher is not None:
            fields["teacher_logprobs"] = teacher
        args = ([items[s.prompt_index].prompt for s in samples], [s.text for s in samples],
                [items[s.prompt_index].answer for s in samples])
        return self.reward.first("score", *args, **fields, what="reward", timeout_s=self.cfg.run.timeout("reward"))

    def evaluate(self) -> dict[str, float]:
        items = self.data.evaluation
        max_tokens = self.cfg.eval.max_new_tokens or self.cfg.rollout.max_new_tokens
        samples = self.generate(items, [0.0], max_tokens, "eval")
        self.eval_rows = greedy_rows(samples)
        metrics = task_metrics(
            [s.text for s in samples], [items[s.prompt_index].answer for s in samples],
            [len(s.completion_ids) for s in samples], template_format_style(self.cfg.data.template),
        )
        if self.teachers:
            # The reverse KL is an expectation under the student: sample at temperature 1, seeded
            # per prompt (the same draws at every evaluation, and the same engine state after
            # them in two runs of one seed).
            seeds = [request_seed(self.cfg.run.seed, EVAL_DRAWS, i) for i in range(len(items))]
            sampled = self.generate(items, [1.0], max_tokens, "eval", seeds)
            teacher = self.teacher_scores(items, sampled, by_token=self.data.teacher_same_vocab, tag="eval")
            metrics.update(distill_metrics(teacher, [s.sampling_logprobs for s in sampled]))
            metrics.update(self.teacher_accuracy(items, max_tokens))
            # Eval traffic is counted under its own tag (the producer may be scoring a training
            # batch meanwhile, whose counters stay untouched); drop it.
            self.teachers.call("take_stats", "eval", what="teacher", timeout_s=self.cfg.run.timeout("teacher"))
        if self.data.suite_tasks:
            metrics.update(self.evaluate_suite())
        return metrics

    def teacher_accuracy(self, items: list[PromptItem], max_tokens: int) -> dict[str, float]:
        """The teacher's own greedy accuracy on the held-out prompts (its prompt, its template);
        measured once, since the teacher does not change."""
        if self._teacher_accuracy is None:
            k, pairs = len(self.teachers), [(it.question, it.answer, raw_question(it)) for it in items]
            shards = self.teachers.sharded("answers", pairs, max_tokens, what="teacher",
                                           timeout_s=self.cfg.run.timeout("eval"))
            texts = [shards[i % k][i // k] for i in range(len(pairs))]
            measured = task_metrics(texts, [it.answer for it in items], [0] * len(texts),
                                    template_format_style(self.cfg.data.template))
            self._teacher_accuracy = {"teacher_accuracy": measured["accuracy"]}
        return self._teacher_accuracy

    def evaluate_suite(self) -> dict[str, float]:
        """`eval.suite` on the engines' current weights, with `rlsys eval`'s task code."""
        from transformers import AutoTokenizer

        from rlsys.eval.run_tasks import run_tasks

        def generate(items, temperatures, max_tokens, seeds):
            return self.generate(items, temperatures, max_tokens, "eval", seeds)

        def score_windows(contexts, targets):
            return self.rollout.score_windows(contexts, targets, self.cfg.run.timeout("eval"))

        if getattr(self, "suite_tokenizer", None) is None:
            self.suite_tokenizer = AutoTokenizer.from_pretrained(self.data.model_path)
        scored, _ = run_tasks(self.data.suite_tasks, self.suite_tokenizer, generate, score_windows,
                              self.cfg.model.max_model_len, self.cfg.run.seed)
        return {f"{task}/{metric}": est.value for task, s in scored.items() for metric, est in s.metrics.items()}

    def greedy_check(self, count: int) -> list[dict]:
        """Greedy completions of the first `count` held-out prompts (as evaluation writes them)."""
        max_tokens = self.cfg.eval.max_new_tokens or self.cfg.rollout.max_new_tokens
        samples = self.generate(self.data.evaluation[:count], [0.0], max_tokens, "eval")
        return greedy_rows(samples)

    def sync(self, version: int | None = None) -> dict[str, float]:
        """The learner's weights to every engine as the next version (or `version`)."""
        stats = self.rollout.push(self.version + 1 if version is None else version)
        self.version = self.rollout.version  # only once every engine has confirmed the new weights
        return stats

    def scale_rollout(self, size: int) -> dict[str, float]:
        """Between iterations: grow or shrink the rollout pool; new workers get the current weights."""
        return self.rollout.scale(size)

    def take_requests(self) -> dict[str, float]:
        """Apply what `rlsys scale` (or a script) asked of the running job since the last call."""
        import ray

        if getattr(self, "control", None) is None:
            return {}
        wanted = ray.get(self.control.take.remote()).get("rollout")
        return self.scale_rollout(wanted) if wanted is not None and wanted != len(self.rollout) else {}

    def restart_metrics(self) -> dict[str, float]:
        events = self.rollout.take_events()
        return {"rollout/workers": float(len(self.rollout)),
                "rollout/restarts_now": float(sum(e["event"] == "restart" for e in events)),
                **{f"{role}/restarts": float(n) for role, n in self.restarts_by_role().items()}}

    def restarts_by_role(self) -> dict[str, int]:
        """Actors replaced (rollout workers) or restarted by Ray (teachers, reward worker) in this job."""
        out = {"rollout": self.rollout.total_restarts, "reward": self.reward.ray_restarts()}
        if self.teachers is not None:
            out["teacher"] = self.teachers.ray_restarts()
        return out

    def restarts(self, resumed: dict) -> int:
        """Restarts over the whole run, the segments before a resume included."""
        return resumed.get("restarts", 0) + sum(self.restarts_by_role().values())

    def save_checkpoint(self, directory: Path) -> dict[str, list[str]]:
        """Every learner and critic rank's training state under `directory`; their optimiser digests."""
        bound = self.cfg.run.timeout("save")
        digests = {"learner": [r["optimizer_digest"] for r in self.learners.call(
            "save_checkpoint", str(directory / "learner"), what="checkpoint", timeout_s=bound)]}
        if self.critics is not None:
            digests["critic"] = [r["optimizer_digest"] for r in self.critics.call(
                "save_checkpoint", str(directory / "critic"), what="checkpoint", timeout_s=bound)]
        return digests

    def load_checkpoint(self, directory: Path, saved: dict[str, list[str]]) -> None:
        """Every rank continues from `directory`; the optimiser state each loads must digest
        as the one saved, bit for bit."""
        bound = self.cfg.run.timeout("start")
        groups = {"learner": self.learners, "critic": self.critics}
        for role, digests in saved.items():
            loaded = [r["optimizer_digest"] for r in groups[role].call(
                "load_checkpoint", str(directory / role), what="loading the checkpoint", timeout_s=bound)]
            if loaded != digests:
                raise RunError(f"checkpoint {directory}: the {role} optimiser state loaded differs from the one "
                               "saved; the checkpoint is damaged: resume from an older one (run.resume=PATH)")

    def policy_frozen(self, it: int) -> bool:
        """Iteration `it` (from 1) trains only the critic (`critic.warmup_iterations`)."""
        return self.critics is not None and it <= self.cfg.critic.warmup_iterations

    def check_on_policy(self, samples: list[Sample]) -> dict[str, float]:
        return check_on_policy(samples, self.version, self.cfg.rollout.max_staleness)

    def save(self, run_dir: Path) -> dict[str, str]:
        """The policy (and the critic) as HF folders in the run folder; with LoRA the policy
        is its adapter (`adapter/`, for PEFT and vLLM to load on the base)."""
        if self.cfg.model.lora is not None:
            saved = {"adapter_dir": str(self.save_model(self.learners, run_dir / "adapter"))}
        else:
            saved = {"model_dir": str(self.save_model(self.learners, run_dir / "model"))}
        if self.critics is not None:
            saved["critic_dir"] = str(self.save_model(self.critics, run_dir / "critic"))
        return saved

    def save_model(self, group: ActorGroup, out: Path) -> Path:
        tmp = out.with_name(out.name + ".partial")
        group.call("save", str(tmp), self.cfg.model.dtype, what="save", timeout_s=self.cfg.run.timeout("save"))
        if out.exists():  # a resumed run replaces the model an earlier segment saved
            old = out.with_name(out.name + ".old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
        return out

    def shutdown(self) -> None:
        for group in (getattr(self, "rollout", None), getattr(self, "learners", None), self.critics):
            if group is not None:
                group.kill()
        if self.teachers is not None and not self.cfg.teacher.detached:
            self.teachers.kill()
        if getattr(self, "control", None) is not None:
            import ray

            ray.kill(self.control)


def schedule_steps(cfg: Config, offline_pairs: int, needs_critic: bool) -> dict[str, int]:
    """Optimiser steps over `run.schedule_iterations` (default `run.iterations`) iterations."""
    iterations = cfg.run.schedule_iterations or cfg.run.iterations
    if cfg.algorithm.type == "dpo":
        pairs = cfg.rollout.prompts_per_iteration * iterations if cfg.algorithm.online else offline_pairs
        return {"learner": cfg.algorithm.epochs * max(1, pairs // cfg.learner.mini_batch_size)}
    steps_per_iter = cfg.learner.epochs * (cfg.batch_size // cfg.learner.mini_batch_size)
    policy_iterations = iterations - (cfg.critic.warmup_iterations if needs_critic else 0)
    out = {"learner": steps_per_iter * max(1, policy_iterations)}
    if needs_critic:
        critic = cfg.critic_learner()
        out["critic"] = critic.epochs * (cfg.batch_size // critic.mini_batch_size) * iterations
    return out


def check_on_policy(samples: list[Sample], version: int, max_staleness: int = 0) -> dict[str, float]:
    """Train only on samples of the current weights or, with asynchronous rollouts, at most
    `max_staleness` versions behind them: refuse any other. The staleness seen, as metrics."""
    lags = [version - s.weight_version for s in samples]
    bad = sorted({s.weight_version for s, lag in zip(samples, lags) if not 0 <= lag <= max_staleness})
    if bad:
        allowed = "the current weights" if max_staleness == 0 else f"at most {max_staleness} versions behind"
        raise RunError(f"off-policy samples: weight versions {bad} while the learner is at {version} and "
                       f"rollouts may be {allowed}; an engine did not take the last weight sync")
    return {"rollout/staleness_mean": sum(lags) / max(1, len(lags)), "rollout/staleness_max": float(max(lags, default=0))}


def raw_question(item: PromptItem) -> str:
    return item.metadata.get("raw_question", item.question)


def greedy_rows(samples: list[Sample]) -> list[dict]:
    """Held-out completions as eval_samples.jsonl keeps them (with their log-prob, which moves
    with the weights even when the text does not)."""
    return [{"eval_index": s.prompt_index, "completion": s.text, "logprob": sum(s.sampling_logprobs)}
            for s in samples]


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.rename(path)


def plot_run(run_dir: Path) -> None:
    """plots/curves.png of the finished run (`rlsys plot` draws it again, or with other runs)."""
    import sys

    from rlsys.observability.plots import plot_runs

    try:
        plot_runs([run_dir])
    except Exception as exc:  # a picture never fails a run that trained and saved
        print(f"rlsys: could not draw {run_dir}/plots/curves.png: {exc}", file=sys.stderr)


def train(cfg: Config) -> dict:
    prepared = prepare(cfg)
    resume_from = resume_point(cfg)  # a checkpoint to continue from, checked against this config
    run_dir = prepare_run_dir(cfg, keep=resume_from is not None and Path(cfg.run.dir).resolve()
                              in resume_from.resolve().parents)
    if resume_from is not None:
        set_aside_newer(run_dir, resume_from)  # checkpoints after it belong to an abandoned timeline
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    controller = Controller(cfg)
    controller.resume_from = resume_from
    try:
        controller.start(prepared)
        loop = preference if cfg.algorithm.type == "dpo" else sync_rl
        summary = loop.run(controller, run_dir)
        write_json_atomic(run_dir / "summary.json", summary)
        plot_run(run_dir)
        return summary
    except RunError as exc:
        if found := whole_checkpoints(run_dir):
            raise RunError(f"{exc}\nrlsys: the run can continue from {found[-1]}: run the same command again "
                           "(run.resume=auto)") from exc
        raise
    finally:
        controller.shutdown()
