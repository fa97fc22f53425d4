"""`rlsys local-cluster start --nodes N` / `rlsys local-cluster stop ADDRESS`: a Ray cluster of
N nodes on this machine, on 127.0.0.1 only (worker k offers the resource `nodek: 1`), to try
placement, node loss and `ray job submit` without a cluster. `start` prints the address last."""

from __future__ import annotations

import json

from rlsys.errors import ConfigError

NAME, HELP = "local-cluster", "start or stop a several-node Ray cluster on this machine (127.0.0.1 only)"


def add_arguments(p) -> None:
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("address", nargs="?", help="stop: the address `start` printed")
    p.add_argument("--nodes", type=int, default=3, help="start: nodes, the head included (default 3)")
    p.add_argument("--cpus-per-node", type=float, default=2.0, help="start: logical CPUs each node offers")


def run(args) -> int:
    from rlsys.distributed.local_cluster import start_local_cluster, stop_local_cluster

    if args.action == "stop":
        if not args.address:
            raise ConfigError("rlsys local-cluster stop needs the address `start` printed")
        print(json.dumps({"stopped": args.address, "processes": len(stop_local_cluster(args.address))}))
        return 0
    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes}: a cluster has at least one node (the head)")
    state = start_local_cluster(args.nodes, args.cpus_per_node)
    print(json.dumps({k: state[k] for k in ("nodes", "cpus_per_node", "dashboard", "session_dir")}))
    print(f"use it: RAY_ADDRESS={state['address']} (or ray.address={state['address']}); stop it: "
          f"rlsys local-cluster stop {state['address']}")
    print(state["address"])
    return 0
