import torch

from rlsys.transport.weight_sync import SyncPlan, choose_backend, pack_bucket, plan_buckets, unpack_bucket


def test_buckets_respect_the_limit_and_keep_order():
    named = [("a", (4, 4), torch.float32), ("b", (8,), torch.bfloat16), ("c", (100,), torch.float32), ("d", (2,), torch.float32)]
    plan = plan_buckets(named, bucket_bytes_limit=80, version=3)
    assert [[m.name for m in b] for b in plan.buckets] == [["a", "b"], ["c"], ["d"]]  # 64+16, 400 alone, 8
    assert plan.total_bytes == 64 + 16 + 400 + 8
    assert SyncPlan.from_wire(plan.to_wire()) == plan


def test_pack_unpack_roundtrip_casts_to_engine_dtype():
    tensors = [torch.randn(3, 5), torch.randn(7), torch.arange(6, dtype=torch.float32).view(2, 3)]
    named = [("x", (3, 5), torch.bfloat16), ("y", (7,), torch.float32), ("z", (2, 3), torch.bfloat16)]
    (bucket,) = plan_buckets(named, 10**6, 0).buckets
    flat = pack_bucket(tensors, bucket, torch.device("cpu"))
    assert flat.dtype == torch.uint8 and flat.numel() == 64 + 6 * 2  # x at 0 (30 B), y at 32 (28 B), z at 64
    out = dict(unpack_bucket(flat, bucket))
    assert torch.equal(out["x"], tensors[0].to(torch.bfloat16))
    assert torch.equal(out["y"], tensors[1])
    assert out["z"].dtype == torch.bfloat16 and out["z"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_auto_backend_is_nccl_only_when_every_role_holds_whole_gpus():
    assert choose_backend("auto", 0, 0) == "gloo"
    assert choose_backend("auto", 1, 1) == "nccl"
    assert choose_backend("auto", 0.5, 0.5) == "gloo"  # may share one device, which NCCL refuses
    assert choose_backend("auto", 1, 0) == "gloo"
    assert choose_backend("nccl", 0.5, 0.5) == "nccl"  # an explicit choice stands
