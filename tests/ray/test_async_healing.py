"""Healing a rollout worker while the learner trains (asynchronous rollouts, k = 1 and 2).

A worker dies after generating its chunk of a batch drawn after the learner has trained
iteration 2 and before iteration 2's weights reach the engines; its replacement must re-run
that chunk with exactly the weights of the version the chunk is tagged with (the learner's
last push, which training has since moved past), not with the learner's newer weights. The check is independent of
how the weights travel: requests are seeded per prompt, so the same weights write the same
completions with the same log-probs on any engine; the dead worker wrote its chunk to a file
before dying, and the replacement's chunk in the batch the learner received must equal it.
The death is a real process exit placed by a subclass (timing could not hit the point)."""

import json
import os
import sys
import threading
import time

import pytest

from rlsys.workers.rollout import RolloutWorker

from .test_rollout_faults import _cfg

pytestmark = pytest.mark.ray


class DiesAfterGenerating(RolloutWorker):
    """Writes its `nth` generation (prompt index, completion, log-probs, version) to `record`,
    then exits its process without returning it."""

    def __init__(self, *args, nth: int, record: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.nth, self.record, self.calls = nth, record, 0

    def generate(self, *args, **kwargs):
        out = super().generate(*args, **kwargs)
        self.calls += 1
        if self.calls == self.nth and out and out[0].weight_version >= 1:
            with open(self.record, "w") as fh:
                json.dump([[s.prompt_index, s.completion_ids, s.sampling_logprobs, s.weight_version] for s in out], fh)
            os._exit(1)
        return out


@pytest.mark.parametrize("k", [1, 2])
def test_a_worker_replaced_during_training_reruns_its_chunk_with_its_versions_weights(
        local_ray, tiny_model_path, tmp_path, monkeypatch, k):
    import cloudpickle

    from rlsys.distributed import actors
    from rlsys.loops import rl, rollout_ahead
    from rlsys.preparation import prepare, prepare_run_dir
    from rlsys.run import run_context, start_roles

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = _cfg(tiny_model_path, tmp_path / "run")
    cfg = cfg.model_copy(update={
        "run": cfg.run.model_copy(update={"iterations": 2 + k}),
        "rollout": cfg.rollout.model_copy(update={"max_staleness": k}),
        "learner": cfg.learner.model_copy(update={"lr": 5e-3}),
        "sync": cfg.sync.model_copy(update={"timeout_s": 10})})
    record = tmp_path / "dead_chunk.json"
    started, plain = {}, actors.start_rollout_worker

    def start(cfg_, model_path, slot):
        started[slot] = started.get(slot, 0) + 1
        if (slot, started[slot]) != (1, 1):
            return plain(cfg_, model_path, slot)
        return local_ray.remote(num_cpus=0.5, max_restarts=0)(DiesAfterGenerating).remote(
            model_path, dtype="float32", max_model_len=256, kv_cache_gib=0.25, seed=cfg_.run.seed + 1000, name="rollout-1",
            nth=3 + k, record=str(record))

    monkeypatch.setattr(actors, "start_rollout_worker", start)
    batches, real_collect = {}, rollout_ahead.collect

    trained_two = threading.Event()

    def recording_collect(ctx, sampler, it, engines=None):
        if it == 2 + k:  # drawn once iteration 2 has trained, before its weights are pushed
            assert trained_two.wait(300)
        batches[it] = real_collect(ctx, sampler, it, engines)
        return batches[it]

    monkeypatch.setattr(rollout_ahead, "collect", recording_collect)
    prepared = prepare(cfg)
    run_dir = prepare_run_dir(cfg)
    ctx = run_context(cfg, prepared, run_dir)
    try:
        start_roles(ctx)
        real_train, calls = ctx.roles.learners.train, []

        def train(*args, **kwargs):
            out = real_train(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:  # the learner is past version 1; the producer draws now, first
                trained_two.set()
                time.sleep(2.0)
            return out

        ctx.roles.learners.train = train
        summary = rl.run(ctx)
    finally:
        ctx.roles.stop()
    assert summary["restarts_by_role"]["rollout"] == 1 and started == {0: 1, 1: 2}
    dead = json.loads(record.read_text())
    version = dead[0][3]
    assert version >= 1  # the weights had moved before the death: the test is not trivial
    # The worker's calls: the evaluation before training, then one per batch: its death in
    # call 3 + k was in batch 2 + k.
    prompts = {d[0] for d in dead}
    got = [s for s in batches[2 + k].samples if s.prompt_index in prompts]
    assert [s.completion_ids for s in got] == [d[1] for d in dead]
    assert all(s.weight_version == version for s in got)
    for s, d in zip(got, dead):
        assert s.sampling_logprobs == pytest.approx(d[2], abs=1e-5)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, 3 + k))
    assert all(r["rollout/samples"] == 16 for r in rows) and max(r["rollout/staleness_max"] for r in rows) <= k
