"""`rlsys local-cluster start --nodes N` / `stop ADDRESS` / `kill-node ADDRESS K` / `drain-node
ADDRESS K`: a Ray cluster
of N nodes on this machine, on 127.0.0.1 only (the head offers `node0: 1`, worker k `nodek: 1`), to try
placement, node loss and `ray job submit` without a cluster. `start` prints the address last;
`kill-node` ends worker node K at once (its raylet and its actors), as a lost machine;
`drain-node` gives it Ray's preemption notice first (a run moves its rollout workers off)."""

from __future__ import annotations

import json

from rlsys.errors import ConfigError

NAME, HELP = "local-cluster", "start or stop a several-node Ray cluster on this machine (127.0.0.1 only)"


def add_arguments(p) -> None:
    p.add_argument("action", choices=["start", "stop", "kill-node", "drain-node"])
    p.add_argument("address", nargs="?", help="stop, kill-node: the address `start` printed")
    p.add_argument("node", nargs="?", type=int, help="kill-node, drain-node: the worker node (1..N-1)")
    p.add_argument("--nodes", type=int, default=3, help="start: nodes, the head included (default 3)")
    p.add_argument("--cpus-per-node", type=float, default=2.0, help="start: logical CPUs each node offers")
    p.add_argument("--deadline", type=float, default=60.0,
                   help="drain-node: seconds until the node goes, as the preemption notice says (default 60)")
    p.add_argument("--auth", choices=["none", "token"], default="none",
                   help="start: token: Ray's token authentication (clients set RAY_AUTH_MODE=token)")


def run(args) -> int:
    from rlsys.distributed.local_cluster import drain_node, kill_node, start_local_cluster, stop_local_cluster

    if args.action != "start" and not args.address:
        raise ConfigError(f"rlsys local-cluster {args.action} needs the address `start` printed")
    if args.action in ("kill-node", "drain-node"):
        if args.node is None:
            raise ConfigError(f"rlsys local-cluster {args.action} ADDRESS K: give the worker node K")
        try:
            print(json.dumps(kill_node(args.address, args.node) if args.action == "kill-node"
                             else drain_node(args.address, args.node, args.deadline)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return 0
    if args.action == "stop":
        print(json.dumps({"stopped": args.address, "processes": len(stop_local_cluster(args.address))}))
        return 0
    if args.nodes < 1:
        raise ConfigError(f"--nodes {args.nodes}: a cluster has at least one node (the head)")
    state = start_local_cluster(args.nodes, args.cpus_per_node, args.auth)
    print(json.dumps({k: state[k] for k in ("nodes", "cpus_per_node", "dashboard", "metrics_port", "auth",
                                            "session_dir")}))
    print(f"use it: RAY_ADDRESS={state['address']} (or ray.address={state['address']}); stop it: "
          f"rlsys local-cluster stop {state['address']}")
    print(state["address"])
    return 0
