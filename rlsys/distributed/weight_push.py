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
from rlsys.distributed.calls import RunError, wait_all
from rlsys.distributed.weight_sync import checksums_match, pick_probes


def sync_timeout(cfg: SyncConfig, buckets: int) -> float:
    return cfg.timeout_s + cfg.per_bucket_timeout_s * buckets


def push_weights(
    learners: list, learner_names: list[str], engines: list, engine_names: list[str],
    cfg: SyncConfig, dtype: str, version: int, engine_keys: list[str],
) -> dict[str, float]:
    """Broadcast the learner's weights as `version` to every engine and verify them there."""
    plan = wait_all([learners[0].weight_plan.remote(cfg.bucket_mb, dtype, version)], learner_names[:1],
                    "planning the weight sync", cfg.timeout_s)[0]
    probes = pick_probes(engine_keys, version, cfg.probes)
    plan["probes"] = sorted({part for key in probes for part in key.split("+")})
    # An engine that is busy or hung is named here, before any rank enters the collective.
    wait_all([e.ping.remote() for e in engines], engine_names, "weight sync: engines ready", cfg.timeout_s)
    started = time.perf_counter()
    refs = [lr.broadcast_weights.remote(plan) for lr in learners] + [e.receive_weights.remote(plan) for e in engines]
    results = wait_all(refs, learner_names + engine_names, "weight sync", sync_timeout(cfg, len(plan["buckets"])))
    seconds = time.perf_counter() - started
    sent = results[0].pop("probes")
    for name, report in zip(engine_names, results[len(learners):]):
        verify_engine(name, report, version, sent)
    return {**results[0], "time/sync": seconds, "sync/version": float(version), "sync/probes": float(len(probes))}


def verify_engine(name: str, report: dict, version: int, sent: dict[str, tuple[float, float]]) -> None:
    """Raise `RunError` unless the engine reports `version` and holds what was sent."""
    if report["version"] != version:
        raise RunError(f"weight sync: {name} reports weights version {report['version']}, expected {version}")
    for key, got in report["probes"].items():
        parts = key.split("+")
        if any(p not in sent for p in parts):
            raise RunError(f"weight sync: the learner sent no checksum for {key} (engine {name})")
        want = (sum(sent[p][0] for p in parts), sum(sent[p][1] for p in parts))
        if not checksums_match(got, want):
            raise RunError(f"weight sync: {name} holds different values for {key} than the learner sent "
                           f"(checksum {got} vs {want}); the engine's weights are not the learner's")
