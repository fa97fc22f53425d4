"""The one place where plain rlsys classes become Ray actors, and where they are placed."""

from __future__ import annotations

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlsys.algorithms.registry import build_algorithm, old_policy, policy_loss_kwargs
from rlsys.config import Config, LearnerConfig
from rlsys.distributed.actor_output import logged
from rlsys.distributed.calls import wait_all
from rlsys.distributed.cluster import placement_problems
from rlsys.errors import RunError, Unplaceable
from rlsys.distributed.groups import CriticGroup, LearnerGroup, TeacherPool
from rlsys.distributed.env_pool import EnvPool
from rlsys.distributed.rollout_pool import RolloutPool
from rlsys.models.sampling_filter import SamplingFilter
from rlsys.observability.console import log_dir
from rlsys.transport.ports import free_port
from rlsys.workers.critic import Critic
from rlsys.workers.bare_vllm import bare_vllm_tokens_per_s
from rlsys.workers.environment import EnvironmentWorker
from rlsys.workers.learner import Learner
from rlsys.workers.reward import RewardWorker
from rlsys.workers.reward_model import RewardModelScorer
from rlsys.workers.rollout import RolloutWorker
from rlsys.workers.teacher import TeacherService


PORT_ATTEMPTS = 3  # rendezvous ports tried before a learner or critic start gives up


def _free_endpoint() -> tuple[str, int]:
    host = ray.util.get_node_ip_address()
    return host, free_port(host)


def start_rollout_worker(cfg: Config, model_path: str, slot: int):
    """The vLLM worker of rollout slot `slot` (a replacement or an added worker takes a new one)."""
    remote = ray.remote(num_cpus=cfg.rollout.num_cpus, num_gpus=cfg.rollout.num_gpus, max_restarts=0,
                        **placement_options(cfg.rollout.resources, cfg.rollout.scheduling))(
        logged(RolloutWorker, logs(cfg), f"rollout-{slot}"))
    return remote.remote(
        model_path,
        dtype=cfg.model.dtype,
        max_model_len=cfg.model.max_model_len,
        kv_cache_gib=cfg.rollout.kv_cache_gib,
        enforce_eager=cfg.rollout.enforce_eager,
        seed=cfg.run.seed + 1000 * slot,
        name=f"rollout-{slot}",
        lora_rank=cfg.model.lora.r if cfg.model.lora and cfg.model.lora.adapter_on_engine else None,
        tensor_parallel_size=cfg.rollout.tensor_parallel_size,
        kv_block_size=cfg.rollout.kv_block_size,
        engine_process=cfg.rollout.engine_process,
        max_num_seqs=cfg.rollout.max_num_seqs,
    )


def measure_bare_vllm(cfg: Config, model_path: str, prompts, group: int, max_tokens: int, repeats: int,
                      dtype: str) -> float:
    """Bare vLLM's tokens/s in a Ray worker process with a rollout worker's CPU share, so that
    a comparison isolates rlsys's own overhead; max_calls=1 ends the process (and its engine)
    when the task returns."""
    task = ray.remote(num_cpus=cfg.rollout.num_cpus, max_calls=1)(bare_vllm_tokens_per_s)
    return ray.get(task.remote(model_path, prompts, group, max_tokens, repeats, dtype))


def start_rollout_workers(cfg: Config, model_path: str) -> list:
    return [start_rollout_worker(cfg, model_path, i) for i in range(cfg.rollout.num_workers)]


# Learner calls that serve the weight-sync group (rendezvous, re-sending the last push to a
# replacement engine) run in a thread of their own, so that healing a rollout worker never
# queues behind a training step (asynchronous rollouts heal while the learner trains).
SYNC_GROUP_CALLS = "sync"
LEARNER_SYNC_CALLS = ("sync_endpoint", "init_sync_group", "last_push_plan", "rebroadcast_last")


def _ranks(cls, lc: LearnerConfig, before: tuple, after: tuple, timeout_s: float | None = None,
           options: dict | None = None, output: str | None = None) -> tuple[list, object]:
    """`lc.num_ranks` actors of `cls` packed into one placement group (returned with them, for
    the group to remove when it is killed); rank 0's node hosts the rendezvous. Each is built
    as `cls(*before, rank, world_size, host, port, *after)`."""
    bundle = {"CPU": lc.num_cpus} | ({"GPU": lc.num_gpus} if lc.num_gpus else {}) | lc.resources
    group = placement_group([bundle] * lc.num_ranks, strategy=lc.placement)
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        ray.util.remove_placement_group(group)
        # A node lost moments ago still counts in the cluster's resources until its heartbeats
        # time out, so the check before the start may have passed: say now what is missing.
        missing = placement_problems({cls.__name__.lower(): {k: v * lc.num_ranks for k, v in lc.resources.items()}},
                                     ray.cluster_resources())
        lacks = "; ".join(missing) if missing else "the cluster lacks the CPUs/GPUs (see `ray status`)"
        raise Unplaceable(f"{cls.__name__}: {lc.num_ranks} rank(s) of {bundle} could not be placed within {timeout_s:.0f}s; "
                       f"{lacks}: lower num_cpus/num_gpus, change the role's resources or add nodes") from None
    remote = ray.remote(max_restarts=0, **(options or {}))(logged(cls, output, cls.__name__.lower()))
    attempt = 0
    while True:
        attempt += 1
        host, port = ray.get(
            ray.remote(num_cpus=0)(_free_endpoint)
            .options(scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0))
            .remote()
        )
        handles = [
            remote.options(
                num_cpus=lc.num_cpus, num_gpus=lc.num_gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=rank),
            ).remote(*before, rank, lc.num_ranks, host, port, *after)
            for rank in range(lc.num_ranks)
        ]
        try:
            wait_all([h.__ray_ready__.remote() for h in handles], [f"{cls.__name__.lower()}-{r}" for r in
                     range(len(handles))], f"starting the {cls.__name__.lower()}", timeout_s)
            return handles, group
        except RunError as exc:
            for h in handles:
                ray.kill(h)
            # The port was free when picked and taken before rank 0 bound it: pick another.
            if "Address already in use" not in str(exc) or attempt == PORT_ATTEMPTS:
                ray.util.remove_placement_group(group)
                raise
            print(f"rlsys: {cls.__name__} rendezvous port {port} was taken meanwhile; trying another", flush=True)


def start_learners(cfg: Config, model_path: str, total_optimizer_steps: int, with_placement: bool = False):
    """The learner's ranks (and, `with_placement`, their placement group)."""
    algorithm = build_algorithm(cfg)
    handles, placement = _ranks(Learner, cfg.learner,
                  (model_path, cfg.learner, algorithm.loss, policy_loss_kwargs(cfg), algorithm.needs_reference,
                   cfg.model.dtype),
                  (total_optimizer_steps, cfg.run.seed, cfg.lpt, cfg.rollout.max_new_tokens, cfg.model.lora,
                   old_policy(cfg), SamplingFilter(cfg.rollout.top_k, cfg.rollout.top_p),
                   cfg.rollout.max_staleness > 0),
                  cfg.run.timeout("start"), {"concurrency_groups": {SYNC_GROUP_CALLS: 1}}, logs(cfg))
    return (handles, placement) if with_placement else handles


def start_critics(cfg: Config, model_path: str, total_optimizer_steps: int, with_placement: bool = False):
    """The critic's ranks, from `critic.path` or else the policy's model."""
    lc = cfg.critic_learner()
    handles, placement = _ranks(Critic, lc, (model_path, lc, cfg.critic.value_clip, cfg.model.dtype),
                                (total_optimizer_steps, cfg.run.seed, cfg.critic.head_lr), cfg.run.timeout("start"),
                                output=logs(cfg))
    return (handles, placement) if with_placement else handles


class RemoteRewardModel:
    """A reward-model actor as a reward function (what the reward worker calls)."""

    def __init__(self, handle, timeout_s: float | None) -> None:
        self.handle, self.timeout_s = handle, timeout_s

    def __call__(self, prompts, completions, answers, questions=None, **_) -> list[float]:
        ref = self.handle.score.remote(questions if questions is not None else prompts, completions)
        return wait_all([ref], ["reward_model"], "reward model", self.timeout_s)[0]


def start_reward_models(cfg: Config) -> dict[str, RemoteRewardModel]:
    """One actor per reward-model term; its kwargs `num_cpus`/`num_gpus` place it."""
    out = {}
    for term in cfg.reward.terms:
        if term.name == "reward_model":
            kwargs = dict(term.kwargs)
            options = {"num_cpus": kwargs.pop("num_cpus", 1), "num_gpus": kwargs.pop("num_gpus", 0),
                       **placement_options(kwargs.pop("resources", {}), "default"),
                       **stateless_restarts(cfg.reward.max_restarts)}
            handle = ray.remote(logged(RewardModelScorer, logs(cfg), "reward-model")).options(**options).remote(**kwargs)
            out[term.name] = RemoteRewardModel(handle, cfg.run.timeout("reward"))
    if out:  # loaded and placed, or a named error at start-up instead of a wait in the reward phase
        wait_all([m.handle.ping.remote() for m in out.values()], list(out), "starting the reward model",
                 cfg.run.timeout("start"))
    return out


def env_pool(cfg: Config, cls: type = EnvironmentWorker) -> EnvPool:
    """The environment actors. Ray restarts one that dies but re-runs none of its calls: the
    episodes it held lost their state, and the episode runner starts them again."""
    remote = ray.remote(num_cpus=cfg.env.num_cpus, max_restarts=cfg.env.max_restarts, max_task_retries=0,
                        **placement_options(cfg.env.resources, "default"))
    names = [f"env-{i}" for i in range(cfg.env.num_workers)]
    handles = [remote(logged(cls, logs(cfg), name)).remote(cfg.env) for name in names]
    return EnvPool(handles, names, cfg.env.step_timeout_s)


def start_reward_worker(cfg: Config, cls: type = RewardWorker):
    return ray.remote(num_cpus=cfg.reward.num_cpus, **placement_options(cfg.reward.resources, "default"),
                      **stateless_restarts(cfg.reward.max_restarts))(logged(cls, logs(cfg), "reward")).remote(
        cfg.reward, cfg.data.template, start_reward_models(cfg))


def logs(cfg: Config) -> str | None:
    """The folder the actors of a quiet run write their output to (None: the terminal)."""
    return log_dir(cfg.run.dir, cfg.tracking.console_level)


def placement_options(resources: dict[str, float], scheduling: str) -> dict:
    """Ray options that put an actor on the nodes offering `resources` (custom resources or
    labels), spread over nodes or placed where Ray finds room."""
    return {**({"resources": dict(resources)} if resources else {}),
            **({"scheduling_strategy": "SPREAD"} if scheduling == "spread" else {})}


def stateless_restarts(max_restarts: int) -> dict:
    """Teachers, reward workers and reward models hold no state a run changes: Ray restarts one
    that dies and re-runs its unfinished calls on it (their answers do not depend on which
    process gives them). Rollout workers are replaced by their pool instead: they must rejoin
    the weight-sync group and receive the current weights first."""
    return {"max_restarts": max_restarts, "max_task_retries": max_restarts}


def teacher_names(cfg: Config) -> list[str]:
    base = cfg.teacher.name or "teacher"
    return [f"{base}-{i}" for i in range(cfg.teacher.num_workers)]


def start_teachers(cfg: Config, model_path: str) -> list:
    """The teacher pool. Named teachers (`teacher.name`) are reused when another job already
    started them, and outlive this job when `teacher.detached`."""
    tc = cfg.teacher
    remote = ray.remote(logged(TeacherService, logs(cfg), "teacher"))
    options = {"num_cpus": tc.num_cpus, "num_gpus": tc.num_gpus, **stateless_restarts(tc.max_restarts),
               **placement_options(tc.resources, tc.scheduling), "max_concurrency": 1000}
    handles = []
    for i, name in enumerate(teacher_names(cfg)):
        named = {"name": name, "namespace": tc.namespace, "get_if_exists": True} if tc.name else {}
        if tc.name and tc.detached:
            named["lifetime"] = "detached"
        handles.append(remote.options(**options, **named).remote(
            model_path, tc, tc.template or cfg.data.template, cfg.data.system_prompt,
            tc.max_model_len or cfg.model.max_model_len, seed=cfg.run.seed + 7919 * (i + 1), name=name,
        ))
    return handles


def stop_teachers(cfg: Config) -> list[str]:
    """Kill the named teacher actors of `cfg` (detached ones included); returns those found."""
    stopped = []
    for name in teacher_names(cfg):
        try:
            ray.kill(ray.get_actor(name, namespace=cfg.teacher.namespace))
            stopped.append(name)
        except ValueError:
            pass
    return stopped


def rollout_pool(cfg: Config, model_path: str) -> RolloutPool:
    return RolloutPool(lambda slot: start_rollout_worker(cfg, model_path, slot), cfg.rollout.num_workers,
                       cfg.rollout.max_restarts, cfg.run.timeout("start"), cfg.rollout.resources)


def learner_group(cfg: Config, model_path: str, total_optimizer_steps: int) -> LearnerGroup:
    handles, placement = start_learners(cfg, model_path, total_optimizer_steps, with_placement=True)
    group = LearnerGroup(handles, [f"learner-{r}" for r in range(len(handles))], placement)
    group.call_groups = {m: SYNC_GROUP_CALLS for m in LEARNER_SYNC_CALLS}
    return group


def critic_group(cfg: Config, model_path: str, total_optimizer_steps: int) -> CriticGroup:
    handles, placement = start_critics(cfg, model_path, total_optimizer_steps, with_placement=True)
    return CriticGroup(handles, [f"critic-{r}" for r in range(len(handles))], placement)


def teacher_pool(cfg: Config, model_path: str) -> TeacherPool:
    return TeacherPool(start_teachers(cfg, model_path), teacher_names(cfg))
