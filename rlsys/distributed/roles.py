"""The roles of a run as one object: `start` places every actor (rollout pool, reward worker,
learner and critic ranks, teacher pool, the weight-sync group), each phase of an iteration is
one method (it fans out over the role's actors and gathers their answers), and `stop` ends
them. The loops (`rlsys.loops`) call these methods in their order; nothing here knows the
order of the phases, the evaluation, or the run folder's files beyond what a phase writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rlsys.config import Config
from rlsys.distributed.groups import ActorGroup, CriticGroup, LearnerGroup, TeacherPool
from rlsys.errors import RunError
from rlsys.records import PairItem, PromptItem, Sample, ScoreRequest, TrainItem, Trajectory
from rlsys.transport.weight_sync import choose_backend


class Roles:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.version = 0  # the weights every engine holds (confirmed by each at the last sync)
        self.rollout = self.reward = self.learners = self.control = None
        self.critics: CriticGroup | None = None
        self.placement: dict[str, list[str]] = {}  # role -> the node id of each of its actors, at start
        self.teachers: TeacherPool | None = None
        self.envs = self.episode_runner = None  # multi-turn rollouts (env.type)
        self.autoscaler = None  # rollout.autoscale

    # ----- start and stop -------------------------------------------------------------
    def start(self, model_path: str, critic_path: str | None, teacher_path: str | None,
              schedule: dict[str, int]) -> None:
        """Every role of a training run; `schedule`: the optimiser steps the learning-rate
        schedules span (learner, critic)."""
        self.start_sampling(model_path)
        self.start_training(model_path, critic_path, teacher_path, schedule)

    def start_sampling(self, model_path: str) -> None:
        """The rollout pool and the reward worker (all that `rlsys make-pairs` needs)."""
        from rlsys.distributed.actors import rollout_pool, start_reward_worker
        from rlsys.distributed.cluster import check_placement, init_ray, role_cpus

        init_ray(self.cfg.ray, role_cpus(self.cfg), quiet=self.cfg.tracking.console_level == "quiet")
        check_placement(self.cfg)  # roles pinned to resources no node offers: an error now, not a wait
        self.rollout = rollout_pool(self.cfg, model_path)
        self.reward = ActorGroup([start_reward_worker(self.cfg)], ["reward"])
        if self.cfg.env.type:
            self.start_environments(model_path)

    def start_environments(self, model_path: str) -> None:
        """The environment pool and the episode runner that joins it to the rollout pool."""
        from transformers import AutoTokenizer

        from rlsys.data.templates import system_text
        from rlsys.distributed.actors import env_pool
        from rlsys.distributed.episode_runner import EpisodeRunner
        from rlsys.envs.tokens import TurnTokens

        self.envs = env_pool(self.cfg)
        self.episode_runner = EpisodeRunner(self.cfg, self.rollout, self.envs,
                                            TurnTokens(AutoTokenizer.from_pretrained(model_path)),
                                            system_text(self.cfg.data.template, self.cfg.data.system_prompt))

    def start_training(self, model_path: str, critic_path: str | None, teacher_path: str | None,
                       schedule: dict[str, int]) -> None:
        """Learner ranks, the critic (when `critic_path` is given), teachers, and the weight-sync
        group with the engines."""
        from rlsys.distributed.actors import critic_group, learner_group, teacher_pool
        from rlsys.distributed.autoscaler import start_autoscaler
        from rlsys.distributed.cluster import check_shared_run_dir
        from rlsys.distributed.control import start_control

        cfg, bound = self.cfg, self.cfg.run.timeout("start")
        self.learners = learner_group(cfg, model_path, schedule["learner"])
        if critic_path is not None:
            self.critics = critic_group(cfg, critic_path, schedule["critic"])
            self.critics.call("ping", what="starting the critic", timeout_s=bound)
        # the ranks write checkpoints where the driver reads them
        check_shared_run_dir(Path(cfg.run.dir), {"learner": self.learners, "critic": self.critics}, bound)
        if teacher_path:
            self.teachers = teacher_pool(cfg, teacher_path)
            self.teachers.call("ping", what="starting the teacher", timeout_s=bound)
        backend = choose_backend(cfg.sync.backend, cfg.rollout.num_gpus, cfg.learner.num_gpus)
        self.rollout.attach(self.learners, backend, cfg.sync, cfg.model.dtype, cfg.rollout.max_staleness > 0)
        self.autoscaler = start_autoscaler(self.rollout, cfg.rollout, lambda line: print(f"rlsys: {line}", flush=True))
        self.control = start_control(Path(cfg.run.dir))
        self.placement = self.node_ids()
        print("rlsys: placement: " + "; ".join(f"{role} on {describe_nodes(ids)}" for role, ids in
                                             self.placement.items()), flush=True)

    def node_ids(self) -> dict[str, list[str]]:
        """The Ray node of every actor of every role (one entry per actor, in the group's order)."""
        groups = {"rollout": self.rollout, "reward": self.reward, "learner": self.learners, "critic": self.critics,
                  "teacher": self.teachers}
        return {role: g.node_ids(self._bound("start")) for role, g in groups.items() if g is not None}

    def stop(self) -> None:
        for group in (self.rollout, self.reward, self.learners, self.critics):
            if group is not None:
                group.kill()
        if self.envs is not None:
            self.envs.kill()
        if self.teachers is not None and not self.cfg.teacher.detached:
            self.teachers.kill()
        if self.control is not None:
            import ray

            ray.kill(self.control)

    @property
    def has_teacher(self) -> bool:
        return self.teachers is not None

    @property
    def has_critic(self) -> bool:
        return self.critics is not None

    def _bound(self, phase: str) -> float | None:
        return self.cfg.run.timeout(phase)

    # ----- sampling side --------------------------------------------------------------
    def generate(self, items: list[PromptItem], temperatures: list[float], max_tokens: int,
                 phase: str = "generation", seeds: list[int] | None = None) -> list[Sample]:
        """Completions of every item, one per temperature, from the rollout engines."""
        return self.rollout.generate(items, temperatures, max_tokens, self.cfg.rollout.top_p, phase,
                                     self._bound(phase), seeds, self.cfg.rollout.top_k)

    def episodes(self, items: list[PromptItem], temperatures: list[float], seeds: list[int],
                 phase: str = "generation") -> list[Trajectory]:
        """A group of multi-turn episodes per item (one per temperature), token in, token out."""
        return self.episode_runner.run(items, temperatures, seeds, phase, self._bound(phase))

    def score_windows(self, contexts: list[list[int]], targets: list[list[int]]) -> list:
        """The engines' log-probs of `targets` after `contexts` (perplexity tasks)."""
        return self.rollout.score_windows(contexts, targets, self._bound("eval"))

    def teacher_scores(self, items: list[PromptItem], samples: list[Sample], by_token: bool,
                       tag: str = "train") -> list[list[float]]:
        """Teacher log-probs of every sample, sent as many requests that the service batches."""
        requests = [
            ScoreRequest(items[s.prompt_index].question, s.text, s.completion_ids if by_token else None,
                         s.finish_reason == "stop", items[s.prompt_index].answer, items[s.prompt_index].raw_question)
            for s in samples
        ]
        return self.teachers.score(requests, self.cfg.teacher.request_sequences, "teacher",
                                   self._bound("teacher"), tag)

    def teacher_stats(self, seconds: float) -> dict[str, float]:
        """The teacher services' throughput over the last `seconds` of training traffic."""
        return self.teachers.stats(seconds, self._bound("teacher"))

    def drop_teacher_stats(self, tag: str) -> None:
        self.teachers.call("take_stats", tag, what="teacher", timeout_s=self._bound("teacher"))

    def teacher_answers(self, items: list[PromptItem], max_tokens: int) -> list[str]:
        """The teacher's own greedy answers (its prompt, its template), in the order of `items`."""
        k, pairs = len(self.teachers), [(it.question, it.answer, it.raw_question) for it in items]
        shards = self.teachers.sharded("answers", pairs, max_tokens, what="teacher", timeout_s=self._bound("eval"))
        return [shards[i % k][i // k] for i in range(len(pairs))]

    def rewards(self, items: list[PromptItem], samples: list[Sample], teacher: list[list[float]] | None):
        """Every sample's reward and its named parts, from the reward worker."""
        fields = {"questions": [items[s.prompt_index].question for s in samples]}
        if teacher is not None:
            fields["teacher_logprobs"] = teacher
        args = ([items[s.prompt_index].prompt for s in samples], [s.text for s in samples],
                [items[s.prompt_index].answer for s in samples])
        return self.reward.first("score", *args, **fields, what="reward", timeout_s=self._bound("reward"))

    # ----- learning side --------------------------------------------------------------
    def learner_logprobs(self, samples: list[Sample], reference: bool, old: bool):
        """The reference's and/or the current policy's log-probs of every sample, on every learner rank."""
        return self.learners.score(samples, reference, old, self._bound("train"))

    def critic_values(self, samples: list[Sample]) -> list[list[float]]:
        return self.critics.values(samples, self._bound("train"))

    def train_critic(self, items: list[TrainItem]) -> dict[str, float]:
        return self.critics.train(items, self._bound("train"))

    def train_policy(self, items: list[TrainItem], lpt_coef: float) -> dict[str, float]:
        return self.learners.train(items, lpt_coef, self._bound("train"))

    def reference_pairs(self, pairs: list[PairItem]) -> None:
        self.learners.reference_pairs(pairs, self._bound("train"))

    def train_pairs(self, pairs: list[PairItem]) -> dict:
        return self.learners.train_pairs(pairs, self._bound("train"))

    def evaluate_pairs(self, pairs: list[PairItem]) -> list[list[float]]:
        return self.learners.evaluate_pairs(pairs, self._bound("eval"))

    def parameter_counts(self) -> dict:
        return self.learners.first("parameter_counts", what="parameter counts", timeout_s=self._bound("save"))

    def sync(self, version: int | None = None) -> dict[str, float]:
        """The learner's weights to every engine as the next version (or `version`)."""
        stats = self.rollout.push(self.version + 1 if version is None else version)
        self.version = self.rollout.version  # only once every engine has confirmed the new weights
        return stats

    # ----- scaling and restarts -------------------------------------------------------
    def scale_rollout(self, size: int) -> dict[str, float]:
        """Between iterations: grow or shrink the rollout pool; new workers get the current weights."""
        return self.rollout.scale(size)

    def take_requests(self) -> dict[str, float]:
        """Between iterations: rollout workers moved off nodes being drained, the autoscaler's
        decision, then what `rlsys scale` (or a script) asked of the running job."""
        import ray

        from rlsys.distributed.autoscaler import draining_nodes

        out = {"rollout/moved": float(len(self.rollout.move_off(draining_nodes())))}
        if self.autoscaler is not None:
            out |= self.autoscaler.step()
        if self.control is None:
            return out
        try:
            wanted = ray.get(self.control.take.remote()).get("rollout")
        except ray.exceptions.RayActorError:  # lost with its node; the run goes on without it
            print("rlsys: the run's control actor was lost with its node: `rlsys scale` cannot reach this job any "
                  "more (the run itself goes on)", flush=True)
            self.control = None
            return out
        return out | (self.scale_rollout(wanted) if wanted is not None and wanted != len(self.rollout) else {})

    def observe_iteration(self, iteration: int, metrics: dict[str, float]) -> None:
        """A finished iteration's measured times, for the autoscaler's next decision."""
        if self.autoscaler is not None:
            self.autoscaler.observe(iteration, metrics)

    @property
    def scale_events(self) -> list[dict]:
        """The autoscaler's changes (and abandoned changes) in this job."""
        return list(self.autoscaler.events) if self.autoscaler is not None else []

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

    @property
    def restart_events(self) -> list[dict]:
        """Every replacement and scaling event of the rollout pool in this job."""
        return self.rollout.events_seen

    # ----- state on disk --------------------------------------------------------------
    def save_checkpoint(self, directory: Path) -> dict[str, list[str]]:
        """Every learner and critic rank's training state under `directory`; their optimiser digests."""
        bound = self._bound("save")
        digests = {"learner": [r["optimizer_digest"] for r in self.learners.call(
            "save_checkpoint", str(directory / "learner"), what="checkpoint", timeout_s=bound)]}
        if self.critics is not None:
            digests["critic"] = [r["optimizer_digest"] for r in self.critics.call(
                "save_checkpoint", str(directory / "critic"), what="checkpoint", timeout_s=bound)]
        return digests

    def load_checkpoint(self, directory: Path, saved: dict[str, list[str]]) -> None:
        """Every rank continues from `directory`; the optimiser state each loads must digest
        as the one saved, bit for bit."""
        groups = {"learner": self.learners, "critic": self.critics}
        for role, digests in saved.items():
            loaded = [r["optimizer_digest"] for r in groups[role].call(
                "load_checkpoint", str(directory / role), what="loading the checkpoint",
                timeout_s=self._bound("start"))]
            if loaded != digests:
                raise RunError(f"checkpoint {directory}: the {role} optimiser state loaded differs from the one "
                               "saved; the checkpoint is damaged: resume from an older one (run.resume=PATH)")

    def save_models(self, run_dir: Path) -> dict[str, str]:
        """The policy (and the critic) as HF folders in the run folder; with LoRA the policy
        is its adapter (`adapter/`, for PEFT and vLLM to load on the base)."""
        if self.cfg.model.lora is not None:
            saved = {"adapter_dir": str(self._save_model(self.learners, run_dir / "adapter"))}
        else:
            saved = {"model_dir": str(self._save_model(self.learners, run_dir / "model"))}
        if self.critics is not None:
            saved["critic_dir"] = str(self._save_model(self.critics, run_dir / "critic"))
        return saved

    def _save_model(self, group: LearnerGroup | CriticGroup, out: Path) -> Path:
        tmp = out.with_name(out.name + ".partial")
        group.call("save", str(tmp), self.cfg.model.dtype, what="save", timeout_s=self._bound("save"))
        if out.exists():  # a resumed run replaces the model an earlier segment saved
            old = out.with_name(out.name + ".old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
        return out


def describe_nodes(ids: list[str]) -> str:
    """`node 1a2b3c4d x2, node 5e6f7a8b` (short node ids, actors per node)."""
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    return ", ".join(f"node {i[:8]}" + (f" x{n}" if n > 1 else "") for i, n in counts.items())
