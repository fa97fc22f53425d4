"""One weight sync across actors: learner ranks send, every rollout engine receives, and
nothing counts as synced until each engine has confirmed it.

Every wait is bounded (the whole sync by `sync.timeout_s + sync.per_bucket_timeout_s x
buckets`) and every failure names the actor. An engine confirms a sync by returning the
new version and the checksums of a few rotating "probe" tensors as it holds them; these
must equal the learner's checksums of the same tensors as sent.
"""

from __future__ import annotations

import time

from rlsys.config import SyncConfig
from rlsys.distributed.calls import Died, dead, outcomes
from rlsys.errors import RunError
from rlsys.distributed.groups import ActorGroup
from rlsys.transport.weight_sync import checksums_match, pick_probes


def sync_timeout(cfg: SyncConfig, buckets: int) -> float:
    return cfg.timeout_s + cfg.per_bucket_timeout_s * buckets


def init_weight_sync(learners: ActorGroup, engines: ActorGroup, backend: str, cfg: SyncConfig,
                     start_timeout_s: float) -> tuple[int, list[int]]:
    """One process group: learner rank 0 is rank 0 (and hosts the rendezvous), then each
    engine's shards in turn (a tensor-parallel engine takes one rank per shard). Every learner
    rank is called (only rank 0 joins). Returns the group's size and the positions of engines
    that died meanwhile (the group is then unusable: build it again without them)."""
    widths = outcomes([e.sync_ranks.remote() for e in engines.handles], engines.names, "weight sync: engine shards",
                      start_timeout_s)
    lost = dead(widths)
    if lost:
        return 0, lost
    host, port = learners.first("sync_endpoint", what="sync endpoint", timeout_s=start_timeout_s)
    world = 1 + sum(widths)
    refs = [learners.method(lr, "init_sync_group").remote(backend, host, port, world, cfg.timeout_s)
            for lr in learners.handles]
    refs += [e.init_sync_group.remote(backend, host, port, 1 + sum(widths[:i]), world, cfg.timeout_s)
             for i, e in enumerate(engines.handles)]
    results = outcomes(refs, learners.names + engines.names, "joining the weight-sync group", cfg.timeout_s + 30,
                       tolerate_errors=True)
    return world, engine_failures(learners, engines, results, "joining the weight-sync group", replace_failed=False,
                                  timeout_s=cfg.timeout_s)


def engine_failures(learners: ActorGroup, engines: ActorGroup, results: list, what: str,
                    replace_failed: bool, timeout_s: float) -> list[int]:
    """Engines that died (and, with `replace_failed`, that raised) among `results` of learners
    then engines. A learner rank that died stops the run; so does any error while every engine lived.
    After an error every engine is asked once more: one whose vLLM process was killed inside the
    collective may answer with an error before its watch ends it, while its peers report the
    peer they lost; the ping ends it (`RolloutWorker.ping`), and it is replaced, not the run."""
    learner_part, engine_part = results[: len(learners)], results[len(learners):]
    for name, r in zip(learners.names, learner_part):
        if isinstance(r, Died):
            raise RunError(f"{what}: {name} died ({r.error}); the run stops here. Continue it from its newest "
                           "checkpoint with run.resume=auto (run.checkpoint_every > 0 writes them)")
    lost = dead(engine_part)
    if replace_failed:
        lost += [i for i, r in enumerate(engine_part) if isinstance(r, Exception)]
    if not lost and any(isinstance(r, Exception) for r in results):
        lost = dead(outcomes([e.ping.remote() for e in engines.handles], engines.names,
                             f"{what}: engines after a failure", timeout_s, tolerate_errors=True))
    if lost:
        return sorted(set(lost))
    for name, r in zip(learners.names + engines.names, results):
        if isinstance(r, Exception):
            raise RunError(f"{what}: {name} failed: {type(r).__name__}: {r}")
    return []


def push_weights(learners: ActorGroup, engines: ActorGroup, cfg: SyncConfig, dtype: str, version: int,
                 engine_keys: list[str], again: bool = False) -> tuple[dict[str, float], list[int]]:
    """Broadcast the learner's weights as `version` to every engine and verify them there.
    With `again`, learner rank 0 re-sends the buckets of its last push (which was `version`)
    instead, beside whatever it is computing: the weights an engine that joined since must
    hold, even when training has moved the learner's on. Returns the sync's statistics, or
    the positions of engines that died (or, unstaged, were cut short) so that the caller
    replaces them and syncs again."""
    if again:
        plan = learners.first("last_push_plan", what="weight sync (the last push)", timeout_s=cfg.timeout_s)
        if plan is None or plan["version"] != version:
            raise RunError(f"weight sync: learner-0 kept no push of version {version} to send again "
                           f"(it kept {None if plan is None else plan['version']})")
        send = [learners.method(learners.handles[0], "rebroadcast_last").remote()]
        learners = ActorGroup(learners.handles[:1], learners.names[:1])  # rank 0 alone sends
    else:
        plan = learners.first("weight_plan", cfg.bucket_mb, dtype, version, what="planning the weight sync",
                              timeout_s=cfg.timeout_s)
        plan["staged"] = cfg.staged
        if "adapter" in plan:  # LoRA: the adapter's tensors are what the engines receive and hold
            engine_keys = [m[0] for bucket in plan["buckets"] for m in bucket]
        probes = pick_probes(engine_keys, version, cfg.probes)
        plan["probes"] = sorted({part for key in probes for part in key.split("+")})
        plan["probe_keys"] = len(probes)
        send = [lr.broadcast_weights.remote(plan) for lr in learners.handles]
    # An engine that is busy or hung is named here, before any rank enters the collective.
    lost = dead(outcomes([e.ping.remote() for e in engines.handles], engines.names, "weight sync: engines ready",
                         cfg.timeout_s))
    if lost:
        return {}, lost
    started = time.perf_counter()
    refs = send + [e.receive_weights.remote(plan) for e in engines.handles]
    results = outcomes(refs, learners.names + engines.names, "weight sync", sync_timeout(cfg, len(plan["buckets"])),
                       tolerate_errors=True)
    lost = engine_failures(learners, engines, results, "weight sync", replace_failed=not cfg.staged,
                           timeout_s=cfg.timeout_s)
    if lost:
        return {}, lost
    seconds = time.perf_counter() - started
    sent = results[0].pop("probes")
    for name, report in zip(engines.names, results[len(learners):]):
        verify_engine(name, report, version, sent)
    return {**results[0], "time/sync": seconds, "sync/version": float(version), "sync/probes": float(plan["probe_keys"]),
            "sync/world_size": float(1 + sum(r.get("shards", 1) for r in results[len(learners):]))}, []


def verify_engine(name: str, report: dict, version: int, sent: dict[str, tuple[float, float]]) -> None:
    """Raise `RunError` unless the engine reports `version` and holds what was sent: the
    checksum of each probe, summed over the engine's shards, equals the learner's checksums of
    its parts, each counted as many times as the shards hold it (`copies`)."""
    if report["version"] != version:
        raise RunError(f"weight sync: {name} reports weights version {report['version']}, expected {version}")
    for key, got in report["probes"].items():
        parts = key.split("+")
        if any(p not in sent for p in parts):
            raise RunError(f"weight sync: the learner sent no checksum for {key} (engine {name})")
        copies = report.get("copies", {}).get(key) or [1.0] * len(parts)
        want = (sum(c * sent[p][0] for c, p in zip(copies, parts)), sum(c * sent[p][1] for c, p in zip(copies, parts)))
        if not checksums_match(got, want):
            raise RunError(f"weight sync: {name} holds different values for {key} than the learner sent "
                           f"(checksum {got} vs {want}); the engine's weights are not the learner's")
