"""Real Ray actors, a real vLLM engine, a real DeepSpeed learner and a real gloo broadcast,
on the tiny random model. One engine and one learner are shared by the tests in order."""

import pytest
import torch

from rlsys.config import Config
from rlsys.distributed.calls import wait_all
from rlsys.errors import RunError
from rlsys.distributed.groups import ActorGroup
from rlsys.distributed.weight_push import push_weights
from rlsys.records import TrainItem

from .conftest import engine_and_learner

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def actors(local_ray, tiny_model_path):
    cfg = Config.model_validate({
        "model": {"path": tiny_model_path, "dtype": "float32", "max_model_len": 256},
        "rollout": {"num_workers": 1, "kv_cache_gib": 0.25, "prompts_per_iteration": 2, "group_size": 4},
        "learner": {"mini_batch_size": 4, "micro_batch_size": 2, "lr": 5e-3, "epochs": 1},
        "algorithm": {"kl_beta": 0.1},
        "sync": {"bucket_mb": 0.05, "timeout_s": 20},
    })
    rollout, learner = engine_and_learner(local_ray, cfg, tiny_model_path)
    yield cfg, rollout, learner
    local_ray.kill(rollout)
    local_ray.kill(learner)


PROMPTS = [[1, 406, 201, 19, 267, 287, 268, 2], [1, 423, 201, 30, 31]]


def test_learner_logprobs_match_vllm_at_the_sampling_temperature(actors, local_ray):
    """vLLM returns processed log-probs (after temperature): the learner, told each sample's
    temperature, must give the same numbers for the same tokens (fp32, within 1e-3)."""
    _, rollout, learner = actors
    samples = local_ray.get(rollout.generate.remote(PROMPTS, [0.7] * 4, 16, 1.0, 0))
    items = [TrainItem(s.prompt_ids, s.completion_ids, 0.0, temperature=s.temperature) for s in samples]
    for reference in (False, True):  # the policy (untrained yet) and the frozen reference
        learner_lp = [torch.tensor(lp) for lp in local_ray.get(learner.logprobs.remote(items, reference))]
        for s, lp in zip(samples, learner_lp):
            assert s.temperature == 0.7 and len(s.sampling_logprobs) == lp.numel() > 0
            assert torch.allclose(torch.tensor(s.sampling_logprobs), lp, atol=1e-3), (s.sampling_logprobs, lp)
    # At T=1 the same tokens score differently: the temperature is really applied.
    at_one = local_ray.get(learner.logprobs.remote([TrainItem(s.prompt_ids, s.completion_ids, 0.0) for s in samples]))
    assert max(float((torch.tensor(s.sampling_logprobs) - torch.tensor(lp)).abs().max())
               for s, lp in zip(samples, at_one)) > 0.01


def test_learner_logprobs_match_vllm_through_top_k_and_top_p(actors, local_ray, tiny_model_path):
    """At T=0.7, top_k=20, top_p=0.9 vLLM samples from the renormalised kept set and reports
    those log-probs; a learner of that config must give the same per token (fp32, 1e-3),
    while one without the filter sees the truncation as a gap."""
    from rlsys.distributed.actors import start_learners

    cfg, rollout, plain = actors
    filtered = cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"top_p": 0.9, "top_k": 20})})
    learner = start_learners(filtered, tiny_model_path, total_optimizer_steps=10)[0]
    try:
        samples = local_ray.get(rollout.generate.remote(PROMPTS, [0.7] * 4, 16, 0.9, 0, top_k=20))
        items = [TrainItem(s.prompt_ids, s.completion_ids, 0.0, temperature=s.temperature) for s in samples]
        got = local_ray.get(learner.logprobs.remote(items))
        unfiltered = local_ray.get(plain.logprobs.remote(items))
    finally:
        local_ray.kill(learner)
    tokens = sum(len(s.completion_ids) for s in samples)
    assert tokens > 40
    for s, lp in zip(samples, got):
        gap = (torch.tensor(s.sampling_logprobs) - torch.tensor(lp)).abs().max()
        assert len(lp) == len(s.sampling_logprobs) and gap < 1e-3, (s.sampling_logprobs, lp)
    # Without the filter the learner's log-probs sit below vLLM's by -log(kept mass) > 0.
    shortfall = [a - b for s, lp in zip(samples, unfiltered) for a, b in zip(s.sampling_logprobs, lp)]
    assert min(shortfall) > -1e-3 and sum(shortfall) / len(shortfall) > 0.05


def test_rollout_generates_groups_with_logprobs_and_version(actors, local_ray):
    _, rollout, _ = actors
    samples = local_ray.get(rollout.generate.remote(PROMPTS, [0.7, 1.0, 1.0, 1.3], 12, 1.0, 0))
    assert len(samples) == 8
    assert [s.prompt_index for s in samples] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [s.temperature for s in samples[:4]] == [0.7, 1.0, 1.0, 1.3]
    for s in samples:
        assert s.prompt_ids == PROMPTS[s.prompt_index]
        assert 1 <= len(s.completion_ids) <= 12
        assert len(s.sampling_logprobs) == len(s.completion_ids)
        assert all(lp <= 0.0 for lp in s.sampling_logprobs)
        assert s.weight_version == 0
    # A random model at T=1 gives different completions within a group.
    assert len({tuple(s.completion_ids) for s in samples[:4]}) > 1


def test_learner_step_moves_the_loss_and_the_logprobs(actors, local_ray):
    _, _, learner = actors
    items = [TrainItem([1, 2, 3], [10, 11, 12], 1.0), TrainItem([1, 2, 3], [20, 21, 22], -1.0),
             TrainItem([4, 5], [10, 11, 12, 13], 1.0), TrainItem([4, 5], [30, 31], -1.0)]
    before = local_ray.get(learner.logprobs.remote(items))
    stats = [local_ray.get(learner.train_on_batch.remote(items)) for _ in range(3)]
    after = local_ray.get(learner.logprobs.remote(items))
    assert stats[0]["train/optimizer_steps"] == 1 and stats[-1]["train/optimizer_steps"] == 3
    # First step, before any update: ratio 1 and KL 0, so the loss is the token-mean of
    # -A: tokens 3*(+1) + 3*(-1) + 4*(+1) + 2*(-1) = 2 over 12 tokens.
    assert stats[0]["train/policy_loss"] == pytest.approx(-2 / 12, abs=1e-4)
    assert stats[-1]["train/policy_loss"] != pytest.approx(stats[0]["train/policy_loss"], abs=1e-3)
    assert stats[-1]["train/kl"] > 0  # moved away from the frozen reference
    # positive advantage -> more likely; negative -> less likely
    assert sum(after[0]) > sum(before[0]) and sum(after[2]) > sum(before[2])
    assert sum(after[1]) < sum(before[1]) and sum(after[3]) < sum(before[3])


def _greedy(local_ray, rollout):
    return [s.completion_ids for s in local_ray.get(rollout.generate.remote(PROMPTS, [0.0], 12, 1.0, 0))]


def _expected_engine_keys(layers: int) -> set[str]:
    """The tiny Llama's tensors as vLLM holds them, written out by hand: q/k/v and gate/up
    fused, the LM head tied to the embedding (one tensor)."""
    keys = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(layers):
        p = f"model.layers.{i}"
        keys |= {f"{p}.self_attn.q_proj.weight+{p}.self_attn.k_proj.weight+{p}.self_attn.v_proj.weight",
                 f"{p}.self_attn.o_proj.weight", f"{p}.mlp.gate_proj.weight+{p}.mlp.up_proj.weight",
                 f"{p}.mlp.down_proj.weight", f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"}
    return keys


def _assert_checksums_equal(engine, learner):
    assert set(engine) == _expected_engine_keys(2)
    for key, (s, q) in engine.items():
        parts = key.split("+")
        ls = sum(learner[p][0] for p in parts)
        lq = sum(learner[p][1] for p in parts)
        assert s == pytest.approx(ls, rel=1e-9, abs=1e-9), key
        assert q == pytest.approx(lq, rel=1e-9), key
    covered = {p for key in engine for p in key.split("+")}
    assert covered == set(learner)  # every learner tensor is in the engine


def test_sync_makes_engine_weights_equal_and_changes_greedy_outputs(actors, local_ray):
    cfg, rollout, learner = actors
    greedy_before = _greedy(local_ray, rollout)
    engine_before = local_ray.get(rollout.checksums.remote())
    learner_now = local_ray.get(learner.checksums.remote("float32"))
    assert any(engine_before[k][1] != pytest.approx(sum(learner_now[p][1] for p in k.split("+")), rel=1e-9)
               for k in engine_before), "learner was trained, the engine should still hold the old weights"
    keys = local_ray.get(rollout.weight_keys.remote())
    assert set(keys) == _expected_engine_keys(2)
    plan = local_ray.get(learner.weight_plan.remote(cfg.sync.bucket_mb, "float32", 1))
    assert len(plan["buckets"]) > 1  # bucketing exercised
    stats = push_weights(ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), cfg.sync, "float32", 1,
                         keys)[0]
    assert stats["sync/version"] == 1 and stats["sync/probes"] == cfg.sync.probes
    assert stats["sync/bytes"] == sum(m[4] for b in plan["buckets"] for m in b)
    engine_after = local_ray.get(rollout.checksums.remote())
    _assert_checksums_equal(engine_after, learner_now)
    # The tied embedding / LM head is one tensor in the engine and it took the new values.
    assert "lm_head.weight" not in engine_after
    assert engine_after["model.embed_tokens.weight"] != engine_before["model.embed_tokens.weight"]
    assert _greedy(local_ray, rollout) != greedy_before
    samples = local_ray.get(rollout.generate.remote(PROMPTS[:1], [1.0], 4, 1.0, 0))
    assert samples[0].weight_version == 1
    # The engine computes with the new weights everywhere, the tied output projection too
    # (on the CPU it has a packed copy of its own): its log-probs equal the trained learner's.
    samples = local_ray.get(rollout.generate.remote(PROMPTS, [1.0] * 4, 16, 1.0, 0))
    items = [TrainItem(s.prompt_ids, s.completion_ids, 0.0, temperature=s.temperature) for s in samples]
    for s, lp in zip(samples, local_ray.get(learner.logprobs.remote(items))):
        assert torch.allclose(torch.tensor(s.sampling_logprobs), torch.tensor(lp), atol=1e-3), (s.sampling_logprobs, lp)


def test_a_tensor_missing_from_the_sync_stops_the_run_naming_engine_and_weight(actors, local_ray):
    cfg, rollout, learner = actors
    plan = local_ray.get(learner.weight_plan.remote(cfg.sync.bucket_mb, "float32", 2))
    dropped = "model.layers.1.mlp.down_proj.weight"
    plan["buckets"] = [[m for m in bucket if m[0] != dropped] for bucket in plan["buckets"]]
    plan["buckets"] = [b for b in plan["buckets"] if b]
    refs = [learner.broadcast_weights.remote(plan), rollout.receive_weights.remote(plan)]
    with pytest.raises(RunError, match=r"weight sync: rollout-0 failed: WeightSyncError: rollout-0 \(weights version "
                                       rf"1 -> 2\): 1 weight\(s\) were not loaded and keep their old values: {dropped}"):
        wait_all(refs, ["learner-0", "rollout-0"], "weight sync", timeout_s=60)
    # The engine did not move to the new version.
    assert local_ray.get(rollout.generate.remote(PROMPTS[:1], [1.0], 2, 1.0, 0))[0].weight_version == 1


def _tcp_connections(pid: int) -> int:
    import psutil

    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(len(p.net_connections(kind="tcp")) for p in procs)


def test_regrouping_releases_the_old_group(actors, local_ray):
    """Every restart or scale builds a new sync group on a new rendezvous (opened by the
    learner on a port the OS picks). Five rebuilds later syncs still reach the engine, and the
    learner's and the engine's processes hold as many TCP connections as after the first: no
    old group or rendezvous is kept alive. (On gloo CPython would free an unreferenced group
    anyway; NCCL's communicators are what `close_group` must abort, checked on GPUs only.)"""
    import os

    from rlsys.distributed.weight_push import init_weight_sync

    cfg, rollout, learner = actors
    learners, engines = ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"])
    pids = [local_ray.get(learner.__ray_call__.remote(lambda self: os.getpid())),
            int(local_ray.get(rollout.ping.remote()).split("pid=")[1].split()[0])]
    keys = local_ray.get(rollout.weight_keys.remote())
    counts = []
    for version in range(2, 7):
        assert init_weight_sync(learners, engines, "gloo", cfg.sync, 60) == (2, [])
        assert push_weights(learners, engines, cfg.sync, "float32", version, keys)[0]["sync/version"] == version
        counts.append([_tcp_connections(pid) for pid in pids])
    assert counts[-1] == counts[0], counts


def test_a_busy_engine_is_named_before_the_broadcast_starts(actors, local_ray):
    """An engine stuck in a long call (here a generation far larger than the bound) never
    answers; the sync stops within its bound naming that engine, and no rank entered the
    collective. Leaves the engine busy: the next test kills it."""
    cfg, rollout, learner = actors
    keys = local_ray.get(rollout.weight_keys.remote())
    rollout.generate.remote(PROMPTS * 400, [1.0] * 16, 240, 1.0, 0)  # minutes of work
    sync = cfg.sync.model_copy(update={"timeout_s": 5.0})
    with pytest.raises(RunError, match=r"weight sync: engines ready: rollout-0 did not answer within 5s"):
        push_weights(ActorGroup([learner], ["learner-0"]), ActorGroup([rollout], ["rollout-0"]), sync, "float32", 3, keys)


def test_dead_engine_is_named(actors, local_ray):
    """Runs last: kills the shared engine, as a crash of its process would."""
    _, rollout, _ = actors
    local_ray.kill(rollout)
    with pytest.raises(RunError, match="generation: rollout-0 died: .*"):
        wait_all([rollout.generate.remote(PROMPTS, [1.0], 4, 1.0, 0)], ["rollout-0"], "generation", timeout_s=60)
