"""`rlsys scale RUN --rollout N`: add or remove rollout workers of a running job, between its
iterations."""

from __future__ import annotations

NAME, HELP = "scale", "add or remove rollout workers of a running job (between its iterations)"


def add_arguments(p) -> None:
    p.add_argument("run", help="the run folder (it holds control.json) or the run's name (its folder's name)")
    p.add_argument("--rollout", type=int, required=True, help="rollout workers wanted")
    p.add_argument("--address", default=None, help="the job's Ray cluster (default: RAY_ADDRESS, else control.json)")


def run(args) -> int:
    from rlsys.distributed.control import request_scale

    print(request_scale(args.run, args.rollout, args.address))
    return 0
