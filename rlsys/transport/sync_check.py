"""A stand-alone check of the weight-sync transport on this machine (`rlsys check-sync`).

Starts `ranks` local processes that build the same kind of process group the learner and
the engines build (gloo or NCCL). Rank 0 packs a model-shaped set of random tensors into
buckets and broadcasts them; every other rank unpacks them, and every tensor must arrive
bit for bit. Both time the bucketed sync against one raw broadcast of the same bytes.
Finally rank 0 broadcasts once more while the others stay away, and must raise the sync's
TimeoutError (not hang). Needs only torch: run it on a GPU node before a job to see
that NCCL works there and what bandwidth it gives.
"""

from __future__ import annotations

import os
import time

import torch
import torch.multiprocessing as mp

from rlsys.transport.ports import free_port

from rlsys.transport.weight_sync import (
    broadcast,
    bucket_bytes,
    create_group,
    pack_bucket,
    plan_buckets,
    unpack_bucket,
)


def model_shaped_tensors(total_mb: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Square-ish bf16 matrices plus small vectors, about `total_mb` MiB in all."""
    gen = torch.Generator().manual_seed(seed)
    tensors, used, i = {}, 0, 0
    budget = int(total_mb * 2**20)
    while used < budget:
        side = 1024 if budget - used > 2 * 2**20 else 64
        tensors[f"layers.{i}.weight"] = torch.randn(side, side, generator=gen).to(torch.bfloat16)
        tensors[f"layers.{i}.norm"] = torch.randn(side, generator=gen).to(torch.bfloat16)
        used += (side * side + side) * 2
        i += 1
    return tensors


def _device(backend: str, rank: int, cuda: bool) -> torch.device:
    if backend == "nccl" or cuda:
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def _sync(backend: str, cuda: bool, rank: int, port: int, ranks: int, total_mb: float, bucket_mb: float,
          timeout_s: float, repeats: int, out: dict) -> None:
    device = _device(backend, rank, cuda)
    group = create_group(backend, "127.0.0.1", port, rank, ranks, timeout_s)
    source = model_shaped_tensors(total_mb)
    plan = plan_buckets(((n, tuple(t.shape), t.dtype) for n, t in source.items()), int(bucket_mb * 2**20), 1)

    def settle() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync_times, raw_times = [], []
    for _ in range(repeats):
        settle()
        started = time.perf_counter()
        flats = []  # a receiver keeps the buckets, as an engine's reload consumes them
        for bucket in plan.buckets:
            if rank == 0:
                flat = pack_bucket([source[m.name] for m in bucket], bucket, device)
            else:
                flat = torch.empty(bucket_bytes(bucket), dtype=torch.uint8, device=device)
            broadcast(group, flat)
            flats.append(flat)
        settle()
        sync_times.append(time.perf_counter() - started)
        flat = torch.zeros(plan.total_bytes, dtype=torch.uint8, device=device)
        settle()
        started = time.perf_counter()
        broadcast(group, flat)
        settle()
        raw_times.append(time.perf_counter() - started)
    result = {"sync_seconds": min(sync_times), "raw_seconds": min(raw_times), "bytes": plan.total_bytes,
              "buckets": len(plan.buckets)}
    if rank != 0:
        received = {n: t for flat, b in zip(flats, plan.buckets) for n, t in unpack_bucket(flat, b)}
        result["mismatched"] = [n for n, t in source.items() if not torch.equal(received[n].cpu(), t)]
    # The timeout path: rank 0 sends, the others never post a receive.
    if rank == 0:
        started = time.perf_counter()
        try:
            broadcast(group, torch.zeros(2**20, dtype=torch.uint8, device=device))
            result["timeout"] = "no error raised"
        except TimeoutError as exc:
            result["timeout"] = f"raised after {time.perf_counter() - started:.1f}s: {exc}"
    else:
        time.sleep(timeout_s * 2 + 5)
    out[rank] = result
    # A NCCL communicator whose broadcast timed out cannot be destroyed cleanly.
    os._exit(0)


def check_sync(backend: str = "gloo", cuda: bool = False, ranks: int = 2, total_mb: float = 64.0, bucket_mb: float = 16.0,
               timeout_s: float = 10.0, repeats: int = 3) -> dict:
    if (backend == "nccl" or cuda) and not torch.cuda.is_available():
        raise RuntimeError("check-sync: NCCL or CUDA tensors need a CUDA GPU on this machine")
    if backend == "nccl" and ranks > torch.cuda.device_count():
        raise RuntimeError(f"check-sync: NCCL needs one GPU per rank ({ranks} ranks, {torch.cuda.device_count()} GPUs); "
                           "on one GPU use --backend gloo --cuda")
    port = free_port()
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict()
        procs = [ctx.Process(target=_sync, args=(backend, cuda, r, port, ranks, total_mb, bucket_mb, timeout_s, repeats, out))
                 for r in range(ranks)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=timeout_s * 4 + 120)
            if p.is_alive():
                p.kill()
                raise TimeoutError(f"check-sync: rank {procs.index(p)} hung")
        results = dict(out)
    if len(results) != ranks:
        raise RuntimeError(f"check-sync: ranks {sorted(set(range(ranks)) - set(results))} failed (see their output above)")
    head = results[0]
    return {
        "backend": backend,
        "tensors_on": "cuda" if backend == "nccl" or cuda else "cpu",
        "ranks": ranks,
        "gpus": torch.cuda.device_count(),
        "bytes": head["bytes"],
        "buckets": head["buckets"],
        "sync_seconds": round(head["sync_seconds"], 5),
        "sync_bytes_per_s": round(head["bytes"] / head["sync_seconds"], 1),
        "raw_broadcast_seconds": round(head["raw_seconds"], 5),
        "sync_efficiency": round(head["raw_seconds"] / head["sync_seconds"], 4),
        "bit_identical": all(not results[r]["mismatched"] for r in range(1, ranks)),
        "timeout": head["timeout"],
    }
