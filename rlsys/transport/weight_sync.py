"""Bucketed weight broadcast from learner rank 0 to rollout engines over one process group.

Metadata (names, shapes, dtypes, bucket layout) travels by Ray call; tensors travel only
through the collective. The group is built directly from a TCPStore hosted by the learner
(rank 0) so it never touches the learner's own default (DeepSpeed) group. Gloo on CPU,
NCCL on GPU: the same code, a different backend.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rlsys.transport.ports import listening_store
from rlsys.errors import SyncPeerLost

DTYPES = {str(d): d for d in (torch.float32, torch.bfloat16, torch.float16)}


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: str  # e.g. "torch.bfloat16"
    offset: int  # byte offset inside the bucket
    nbytes: int


@dataclass(frozen=True)
class SyncPlan:
    buckets: tuple[tuple[TensorMeta, ...], ...]
    version: int

    @property
    def total_bytes(self) -> int:
        return sum(bucket_bytes(b) for b in self.buckets)

    def to_wire(self) -> dict:
        """Plain lists and ints: rpc into vLLM's engine process serialises nothing richer."""
        return {
            "version": self.version,
            "buckets": [[[m.name, list(m.shape), m.dtype, m.offset, m.nbytes] for m in b] for b in self.buckets],
        }

    @classmethod
    def from_wire(cls, wire: dict) -> "SyncPlan":
        buckets = tuple(
            tuple(TensorMeta(n, tuple(s), d, o, b) for n, s, d, o, b in bucket) for bucket in wire["buckets"]
        )
        return cls(buckets=buckets, version=int(wire["version"]))


ALIGN = 16  # every tensor starts on a 16-byte boundary so its bytes can be viewed as any dtype


def bucket_bytes(bucket: Iterable[TensorMeta]) -> int:
    return max((m.offset + m.nbytes for m in bucket), default=0)


def plan_buckets(
    named: Iterable[tuple[str, tuple[int, ...], torch.dtype]], bucket_bytes_limit: int, version: int
) -> SyncPlan:
    """Group tensors, in order, into buckets of at most `bucket_bytes_limit` bytes
    (a single larger tensor gets a bucket of its own)."""
    buckets: list[tuple[TensorMeta, ...]] = []
    current: list[TensorMeta] = []
    used = 0
    for name, shape, dtype in named:
        nbytes = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
        offset = -(-used // ALIGN) * ALIGN
        if current and offset + nbytes > bucket_bytes_limit:
            buckets.append(tuple(current))
            current, offset = [], 0
        current.append(TensorMeta(name, tuple(shape), str(dtype), offset, nbytes))
        used = offset + nbytes
    if current:
        buckets.append(tuple(current))
    return SyncPlan(buckets=tuple(buckets), version=version)


def pack_bucket(tensors: list[torch.Tensor], bucket: tuple[TensorMeta, ...], device: torch.device) -> torch.Tensor:
    flat = torch.empty(bucket_bytes(bucket), dtype=torch.uint8, device=device)
    for t, meta in zip(tensors, bucket, strict=True):
        src = t.detach().to(device=device, dtype=DTYPES[meta.dtype]).contiguous()
        flat[meta.offset : meta.offset + meta.nbytes].copy_(src.view(-1).view(torch.uint8))
    return flat


def unpack_bucket(flat: torch.Tensor, bucket: tuple[TensorMeta, ...]) -> Iterator[tuple[str, torch.Tensor]]:
    for meta in bucket:
        raw = flat[meta.offset : meta.offset + meta.nbytes]
        yield meta.name, raw.view(DTYPES[meta.dtype]).view(meta.shape)


def choose_backend(requested: str, rollout_gpus: float, learner_gpus: float) -> str:
    """`auto`: NCCL when the learner and every engine hold whole GPUs of their own; gloo
    otherwise, since NCCL refuses two ranks on one device (seen on an H100: "Duplicate GPU
    detected") and fractional GPUs may share one. Gloo moves CUDA tensors too."""
    if requested != "auto":
        return requested
    return "nccl" if rollout_gpus >= 1 and learner_gpus >= 1 else "gloo"


@dataclass
class SyncGroup:
    group: dist.ProcessGroup
    store: dist.TCPStore  # must outlive the group
    timeout_s: float
    backend: str = "gloo"


def host_rendezvous(host: str, timeout_s: float = 300.0) -> dist.TCPStore:
    """Rank 0's rendezvous store, listening at once on `host` only, on a port the OS picks
    (no port is chosen first and bound later, so no other process can take it in between)."""
    return listening_store(host, 0, timeout_s)


def create_group(backend: str, host: str, port: int, rank: int, world_size: int, timeout_s: float,
                 store: dist.TCPStore | None = None) -> SyncGroup:
    """Join a process group of `world_size` ranks rendezvousing at host:port (rank 0 hosts:
    it passes the `store` that `host_rendezvous` opened there)."""
    timeout = datetime.timedelta(seconds=timeout_s)
    if store is None:
        store = dist.TCPStore(host, port, world_size, is_master=(rank == 0), timeout=timeout)
    else:
        store.set_timeout(timeout)
    prefixed = dist.PrefixStore("rlsys-weight-sync", store)
    if backend == "gloo":
        opts = dist.ProcessGroupGloo._Options()
        opts._timeout = timeout
        opts._devices = [dist.ProcessGroupGloo.create_device(hostname=host)]
        group = dist.ProcessGroupGloo(prefixed, rank, world_size, opts)
    elif backend == "nccl":
        opts = dist.ProcessGroupNCCL.Options()
        opts._timeout = timeout
        group = dist.ProcessGroupNCCL(prefixed, rank, world_size, opts)
    else:
        raise ValueError(f"unknown weight-sync backend {backend!r}; use 'gloo' or 'nccl'")
    return SyncGroup(group, store, timeout_s, backend)


def close_group(sync: SyncGroup | None) -> None:
    """Release a group that a new one replaces (after a restart or a scale): its connections,
    and NCCL's communicator, would otherwise live as long as the process."""
    if sync is None:
        return
    try:
        if sync.backend == "nccl":
            sync.group.abort()  # a peer may be gone: shutdown could wait for it
        else:
            sync.group.shutdown()
    except Exception:  # noqa: BLE001 (already broken by a peer that left: nothing left to free)
        pass


ABORTED = "rlsys-sync-aborted"  # a store key: a member saw a peer leave; the others stop waiting
POLL = datetime.timedelta(seconds=0.5)


def broadcast(sync: SyncGroup, tensor: torch.Tensor) -> None:
    """One broadcast from rank 0, bounded by the group's timeout. Gloo waits in short polls:
    when any member sees a peer leave it marks the group aborted in the rendezvous store, so
    members still waiting on a live peer stop within a poll, not at the timeout."""
    opts = dist.BroadcastOptions()
    opts.rootRank = 0
    work = sync.group.broadcast([tensor], opts)
    size = f"{tensor.numel() / 2**20:.1f} MiB"
    if sync.backend != "gloo":
        if not work.wait(datetime.timedelta(seconds=sync.timeout_s)):
            raise TimeoutError(f"weight broadcast of {size} did not finish within {sync.timeout_s:.0f}s")
        return
    deadline = time.monotonic() + sync.timeout_s
    while True:
        try:
            if work.wait(POLL):
                return
        except RuntimeError as exc:  # gloo reports a peer that left, and a poll's timeout, as RuntimeError
            if "closed by peer" in str(exc) or "Connection reset" in str(exc):
                _mark_aborted(sync)
                raise SyncPeerLost(f"weight broadcast of {size} cut short: a member of the sync group left "
                                   f"({exc})") from exc
            if "timed out" not in str(exc).lower():
                raise
        if _aborted(sync):
            raise SyncPeerLost(f"weight broadcast of {size} cut short: another member saw a peer leave")
        if time.monotonic() > deadline:
            raise TimeoutError(f"weight broadcast of {size} did not finish within {sync.timeout_s:.0f}s: "
                               "a peer of the sync group did not join")


def _mark_aborted(sync: SyncGroup) -> None:
    try:
        sync.store.set(ABORTED, "1")
    except RuntimeError:  # the store's host (learner rank 0) is gone too
        pass


def _aborted(sync: SyncGroup) -> bool:
    try:
        return sync.store.check([ABORTED])
    except RuntimeError:  # the store's host left: the group cannot finish
        return True


def tensor_checksum(t: torch.Tensor) -> tuple[float, float]:
    """(sum, sum of squares) in float64: equal weights give equal checksums."""
    x = t.detach().to(torch.float64)
    return float(x.sum()), float((x * x).sum())


def checksums_match(got: tuple[float, float], want: tuple[float, float], rel: float = 1e-6) -> bool:
    """Checksums of the same values summed in another order: equal up to float64 rounding.
    The sum is compared on the scale of the tensor's norm (it can be near 0)."""
    scale = max(want[1], got[1], 1e-300) ** 0.5
    return abs(got[0] - want[0]) <= rel * scale and abs(got[1] - want[1]) <= rel * max(abs(want[1]), 1e-300)


def pick_probes(keys: list[str], version: int, count: int) -> list[str]:
    """`count` engine keys to checksum after sync `version`, rotating so that every key is
    checked once every len(keys) / count syncs."""
    if not keys or count <= 0:
        return []
    ordered = sorted(keys)
    return sorted({ordered[(version * count + j) % len(ordered)] for j in range(min(count, len(ordered)))})
