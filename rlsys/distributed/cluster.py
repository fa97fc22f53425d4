"""Starting or joining Ray. Local runs and tests stay on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

from rlsys.config import RayConfig
from rlsys.errors import Unplaceable

# Environment every actor gets: quiet vLLM, no tokenizer thread fights on 2 cores.
ACTOR_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
}
# Ray reads this when it is imported: with "0" a local Ray binds and reports 127.0.0.1.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_local_ray_on_loopback() -> None:
    """Call before `import ray` in processes that may start a local Ray."""
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault(LOOPBACK_ENV, "0")


PASSED_THROUGH = ("RLSYS_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "VLLM_CPU_KVCACHE_SPACE", "DS_ACCELERATOR",
                  "VLLM_CPU_NUM_OF_RESERVED_CPU")


def actor_env() -> dict[str, str]:
    env = dict(ACTOR_ENV)
    if (os.cpu_count() or 1) <= 4:
        # vLLM-CPU keeps one core free for its scheduler; on 2 cores that halves generation
        # (measured: SmolLM2 fp32, 64 x 48 tokens, 134 -> 201 tokens/s with none reserved).
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    return env


def role_cpus(cfg) -> dict[str, float]:
    """The CPUs each role of a run asks Ray for (logical: they place actors, they do not pin cores)."""
    demand = {"rollout": cfg.rollout.num_workers * cfg.rollout.num_cpus,
              "learner": cfg.learner.num_ranks * cfg.learner.num_cpus, "reward": cfg.reward.num_cpus}
    if cfg.algorithm.type == "ppo":
        demand["critic"] = cfg.critic.num_ranks * cfg.critic.num_cpus
    if cfg.teacher.path:
        demand["teacher"] = cfg.teacher.num_workers * cfg.teacher.num_cpus
    models = [t for t in cfg.reward.terms if t.name == "reward_model"]
    if models:
        demand["reward_model"] = sum(float(t.kwargs.get("num_cpus", 1)) for t in models)
    return demand


def role_resources(cfg) -> dict[str, dict[str, float]]:
    """The custom resources each role of a run asks for in all (per actor x actors)."""
    wanted = {"rollout": (cfg.rollout.resources, cfg.rollout.num_workers),
              "learner": (cfg.learner.resources, cfg.learner.num_ranks), "reward": (cfg.reward.resources, 1)}
    if cfg.algorithm.type == "ppo":
        wanted["critic"] = (cfg.critic.resources, cfg.critic.num_ranks)
    if cfg.teacher.path:
        wanted["teacher"] = (cfg.teacher.resources, cfg.teacher.num_workers)
    for t in cfg.reward.terms:
        if t.name == "reward_model" and t.kwargs.get("resources"):
            wanted["reward_model"] = (t.kwargs["resources"], 1)
    return {role: {k: float(v) * n for k, v in res.items()} for role, (res, n) in wanted.items() if res}


def placement_problems(demand: dict[str, dict[str, float]], available: dict[str, float]) -> list[str]:
    """What the cluster lacks for each role's custom resources (all roles' needs of one
    resource added up), one line per resource."""
    total: dict[str, float] = {}
    for res in demand.values():
        for k, v in res.items():
            total[k] = total.get(k, 0.0) + v
    problems = []
    for k, need in total.items():
        if need > available.get(k, 0.0) + 1e-9:
            roles = ", ".join(f"{role} {res[k]:g}" for role, res in demand.items() if k in res)
            problems.append(f"resource {k!r}: the run asks for {need:g} ({roles}) and the cluster offers "
                            f"{available.get(k, 0.0):g}")
    return problems


def check_placement(cfg) -> None:
    """Refuse, before any actor starts, roles pinned to resources no node offers."""
    import ray

    problems = placement_problems(role_resources(cfg), ray.cluster_resources())
    if problems:
        raise Unplaceable("the roles cannot be placed: " + "; ".join(problems) + ". Start the nodes with those "
                       "resources (`ray start --resources='{\"NAME\": N}'`), or change the roles' `resources` in the "
                       "config; `ray status` lists what each node offers")


def check_cpus(demand: dict[str, float], available: float, where: str) -> None:
    """Refuse a run whose actors could never all be placed (they would wait forever)."""
    total = sum(demand.values())
    if total > available + 1e-9:
        parts = ", ".join(f"{k} {v:g}" for k, v in demand.items())
        raise Unplaceable(f"the run's actors ask for {total:g} CPUs ({parts}) but {where} has {available:g}: "
                           "lower a role's num_cpus (rollout.num_cpus, learner.num_cpus, critic.num_cpus, ...) "
                           "or raise ray.num_cpus")


def init_ray(cfg: RayConfig, demand: dict[str, float] | None = None, quiet: bool = False) -> None:
    """Join `cfg.address` (or the cluster of `ray job submit`), else start a local Ray on
    127.0.0.1 with enough logical CPUs for `demand` (at least the machine's cores). `quiet`:
    the actors' output stays in their log files and Ray says only what is an error."""
    import logging
    import math

    import ray

    quiet_options = {"log_to_driver": not quiet, "logging_level": logging.ERROR if quiet else logging.INFO}

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        # Inside `ray job submit`, RAY_ADDRESS points at the cluster the job runs on and the
        # job's runtime_env (cluster/runtime_env.yaml) already applies: Ray refuses a second one.
        ray.init(address=address, **quiet_options)
        return
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:
        # Ray was imported before keep_local_ray_on_loopback() ran; without this it would
        # advertise the machine's external address.
        ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[LOOPBACK_ENV] = "0"
    need = sum((demand or {}).values())
    num_cpus = cfg.num_cpus or max(os.cpu_count() or 1, math.ceil(need))
    check_cpus(demand or {}, num_cpus, "the local Ray (ray.num_cpus)")
    ray.init(
        address="local",  # a Ray of this run's own, never a cluster some other command left on this machine
        num_cpus=num_cpus,
        resources=dict(cfg.resources) or None,
        include_dashboard=False,
        runtime_env={"env_vars": actor_env()},
        **quiet_options,
    )


def check_shared_run_dir(run_dir: Path, groups: dict[str, object], timeout_s: float | None) -> None:
    """Refuse a run folder that a learner or critic rank cannot see: they write the checkpoints
    the driver lists, so on a cluster of several machines `run.dir` must be storage every node
    mounts at the same path. Checked by a file the driver writes and each rank looks for."""
    import uuid

    from rlsys.distributed.calls import wait_all

    run_dir.mkdir(parents=True, exist_ok=True)
    probe = run_dir / f".rlsys-visible-{uuid.uuid4().hex[:12]}"
    probe.write_text("")
    try:
        for role, group in groups.items():
            if group is None:
                continue
            seen = wait_all([h.__ray_call__.remote(_sees, str(probe)) for h in group.handles], group.names,
                            f"checking that the {role} sees run.dir", timeout_s)
            blind = [(name, node) for name, (visible, node) in zip(group.names, seen) if not visible]
            if blind:
                raise Unplaceable(
                    f"run.dir {run_dir} is not visible to {', '.join(f'{n} (node {node[:8]})' for n, node in blind)}: "
                    "the learner and critic ranks write checkpoints there for the driver to read. Put run.dir on "
                    "storage every node mounts at the same path (NFS, Lustre, a shared volume), e.g. "
                    "run.dir=/shared/runs/NAME")
    finally:
        probe.unlink(missing_ok=True)


def _sees(actor, path: str) -> tuple[bool, str]:
    import os

    import ray

    return os.path.exists(path), ray.get_runtime_context().get_node_id()
