"""Rollout workers that die inside a running job: one dies in the middle of generation, its
replacement dies in the middle of a weight sync, and the next one's vLLM model-runner process
(the engine in processes of its own, rollout.engine_process=separate) is killed in the middle
of a weight sync (the actor lives on, its call fails inside the
collective, and the learner sees a peer leave: the engine is replaced, not the run stopped);
the reward worker dies in a call. The run (real vLLM engines, a real DeepSpeed learner, gloo
sync) finishes every iteration; each iteration samples every prompt exactly one group's worth;
the final replacement holds the learner's weights and writes the surviving worker's greedy
completions; the metrics and summary record every restart.

The deaths are real (`os._exit`, SIGKILL) and placed at chosen points by a subclass of the
rollout worker defined here: the points a test must hit are not reachable by timing."""

import json
import os
import sys

import pytest

from rlsys.config import Config
from rlsys.workers.reward import RewardWorker
from rlsys.workers.rollout import RolloutWorker

pytestmark = pytest.mark.ray


class DiesOnce(RolloutWorker):
    """Dies at the `nth` call of `point`: 'generate' after generating (the completions never
    return), 'receive_weights' as the sync starts (the learner and the other engine are
    already inside the broadcast). `how`: 'exit' ends the actor's process; 'engine' kills its
    vLLM model-runner process (SIGKILL, as the OOM killer would) and goes on into the call,
    which then fails inside the collective while the actor itself still lives."""

    def __init__(self, *args, point: str, nth: int, how: str = "exit", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.point, self.nth, self.how, self.calls = point, nth, how, 0

    def _maybe_die(self, point: str) -> None:
        if point != self.point:
            return
        self.calls += 1
        if self.calls != self.nth:
            return
        if self.how == "exit":
            os._exit(1)
        import psutil

        runners = [p for p in psutil.Process().children(recursive=True)
                   if p.cmdline() and p.cmdline()[0].startswith("VLLM::Worker")]
        assert runners, "no vLLM model-runner process to kill"
        for p in runners:
            p.kill()

    def generate(self, *args, **kwargs):
        out = super().generate(*args, **kwargs)
        self._maybe_die("generate")
        return out

    def receive_weights(self, wire_plan):
        self._maybe_die("receive_weights")
        return super().receive_weights(wire_plan)


class RewardDiesOnce(RewardWorker):
    """Exits its process in its third call: in iteration 3, or never after Ray restarts it
    (a new process counts from zero), so exactly one restart."""

    calls = 0

    def score(self, *args, **kwargs):
        type(self).calls += 1
        if type(self).calls == 3:
            os._exit(1)
        return super().score(*args, **kwargs)


def _cfg(path: str, run_dir) -> Config:
    return Config.model_validate({
        "run": {"dir": str(run_dir), "iterations": 3, "seed": 0},
        "model": {"path": path, "dtype": "float32", "max_model_len": 256},
        "data": {"source": "reasoning_gym", "task": "chain_sum", "train_size": 32, "eval_size": 4},
        "rollout": {"num_workers": 2, "prompts_per_iteration": 4, "group_size": 4, "max_new_tokens": 16,
                    "kv_cache_gib": 0.25, "num_cpus": 0.5, "max_restarts": 3},
        "learner": {"mini_batch_size": 8, "micro_batch_size": 8, "lr": 1e-3, "num_cpus": 0.5},
        "reward": {"num_cpus": 0.5},
        "sync": {"bucket_mb": 0.05, "timeout_s": 30},
        "tracking": {"console": False, "ray_metrics": False},
    })


def test_workers_dying_in_generation_and_in_sync_are_replaced(local_ray, tiny_model_path, tmp_path, monkeypatch):
    import cloudpickle

    from rlsys.distributed import actors
    from rlsys.loops import rl
    from rlsys.preparation import prepare, prepare_run_dir
    from rlsys.run import run_context, start_roles

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers import it by value
    cfg = _cfg(tiny_model_path, tmp_path / "run")
    started = {}
    plain = actors.start_rollout_worker

    def start(cfg_, model_path, slot):
        started[slot] = started.get(slot, 0) + 1
        faults = {(1, 1): ("generate", 2, "exit"), (1, 2): ("receive_weights", 2, "exit"),
                  (1, 3): ("receive_weights", 2, "engine")}  # (slot, instance) -> death
        if (slot, started[slot]) not in faults:
            return plain(cfg_, model_path, slot)
        point, nth, how = faults[slot, started[slot]]
        return local_ray.remote(num_cpus=0.5, max_restarts=0)(DiesOnce).remote(
            model_path, dtype="float32", max_model_len=256, kv_cache_gib=0.25, seed=slot, name=f"rollout-{slot}",
            point=point, nth=nth, how=how, engine_process="separate" if how == "engine" else "auto")

    monkeypatch.setattr(actors, "start_rollout_worker", start)
    plain_reward = actors.start_reward_worker
    monkeypatch.setattr(actors, "start_reward_worker", lambda cfg_: plain_reward(cfg_, cls=RewardDiesOnce))
    prepared = prepare(cfg)
    run_dir = prepare_run_dir(cfg)
    ctx = run_context(cfg, prepared, run_dir)
    try:
        start_roles(ctx)
        summary = rl.run(ctx)
        # Both engines now hold the learner's weights and write the same greedy completions.
        prompts = [it.prompt_ids for it in prepared.evaluation]
        survivor, replacement = ctx.roles.rollout.handles
        greedy = local_ray.get([h.generate.remote(prompts, [0.0], 16) for h in (survivor, replacement)])
        assert [s.completion_ids for s in greedy[0]] == [s.completion_ids for s in greedy[1]]
        assert [s.weight_version for s in greedy[1]] == [3] * len(prompts)
        assert local_ray.get(survivor.checksums.remote()) == local_ray.get(replacement.checksums.remote())
    finally:
        ctx.roles.stop()

    # slot 1: the first worker, the one that died in a sync, the one whose engine died in a sync, the last
    assert started == {0: 1, 1: 4}
    assert summary["iterations"] == 3 and summary["final_weight_version"] == 3
    assert summary["restarts"] == 4 and summary["restarts_by_role"] == {"rollout": 3, "reward": 1}
    assert [(e["worker"], e["during"]) for e in summary["restart_events"]] == [
        ("rollout-1", "generation"), ("rollout-1", "weight sync"), ("rollout-1", "weight sync")]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert [r["rollout/restarts_now"] for r in rows] == [1.0, 1.0, 1.0]
    assert [r["rollout/restarts"] for r in rows] == [1.0, 2.0, 3.0]
    assert [r["reward/restarts"] for r in rows] == [0.0, 0.0, 1.0]  # its call in iteration 3 was re-run
    # No prompt lost or doubled: each iteration's 4 prompts, 4 samples each, all scored.
    assert all(r["rollout/prompts"] == 4 and r["rollout/samples"] == 16 for r in rows)
    assert [r["sync/version"] for r in rows] == [1.0, 2.0, 3.0]
    order = [json.loads(line)["data_index"] for line in (run_dir / "data_order.jsonl").read_text().splitlines()]
    assert all(len(set(ix)) == 4 for ix in order)
