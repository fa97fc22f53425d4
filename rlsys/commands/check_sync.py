"""`rlsys check-sync`: the weight-sync transport (gloo or NCCL) on this machine, timed (JSON)."""

from __future__ import annotations

import json

NAME, HELP = "check-sync", "check the weight-sync transport (gloo or NCCL) on this machine (JSON)"


def add_arguments(p) -> None:
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--cuda", action="store_true", help="gloo with CUDA tensors (ranks sharing one GPU)")
    p.add_argument("--ranks", type=int, default=2, help="processes: rank 0 sends, the others receive")
    p.add_argument("--mb", type=float, default=256.0, help="MiB of model-shaped bf16 tensors to send")
    p.add_argument("--bucket-mb", type=float, default=64.0)
    p.add_argument("--timeout-s", type=float, default=10.0)


def run(args) -> int:
    from rlsys.transport.sync_check import check_sync

    print(json.dumps(check_sync(args.backend, args.cuda, args.ranks, args.mb, args.bucket_mb, args.timeout_s)))
    return 0
