"""A Ray cluster of several nodes on this machine, on 127.0.0.1 only: a head and N-1 worker
raylets (the head offers the custom resource `node0: 1`, worker k `nodek: 1`), started with Ray's own multi-node
machinery (`ray.cluster_utils.Cluster`: a real GCS and real raylets), so that placement,
node loss and `ray job submit` can be tried on a laptop.

`ray start` cannot do this: joining a second node needs RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1,
and with it `ray start` rewrites `--node-ip-address=127.0.0.1` to the machine's interface
address (`services.resolve_ip_for_localhost`). Started here with that setting at 0, every
node registers and listens on 127.0.0.1. The processes outlive the command; their pids are
kept in a state file so that `stop` ends exactly that cluster."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

from rlsys.distributed.cluster import LOOPBACK_ENV, actor_env

STATE_DIR = Path(tempfile.gettempdir()) / "rlsys-local-clusters"


def state_file(address: str) -> Path:
    return STATE_DIR / (address.replace(":", "_") + ".json")


def start_local_cluster(nodes: int, cpus_per_node: float, auth: str = "none") -> dict:
    """Start the cluster; its address, dashboard, metrics port and processes (also written to
    its state file). `auth="token"`: Ray's token authentication (the token in ~/.ray/auth_token,
    made if missing), as a shared cluster should have; clients then need RAY_AUTH_MODE=token."""
    os.environ[LOOPBACK_ENV] = "0"
    os.environ.update(actor_env())  # the raylets' workers (the actors) inherit them
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    from rlsys.transport.ports import free_port

    if auth == "token":
        _use_token_auth()
    metrics_port = free_port("127.0.0.1")

    ray_constants.ENABLE_RAY_CLUSTER = False  # addresses stay 127.0.0.1 even if ray was imported first
    from ray._private.utils import get_ray_address_file, read_ray_address

    previous = read_ray_address()
    common = {"num_cpus": cpus_per_node, "node_ip_address": "127.0.0.1", "object_store_memory": 256 * 2**20}
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={**common, "resources": {"node0": 1.0}, "include_dashboard": True,
                                      "dashboard_host": "127.0.0.1",
                                      "metrics_export_port": metrics_port})
    # worker k (offering `nodek`) at position k: Cluster keeps its workers in a set
    # Each node unpacks a job's working_dir into its own folder: sharing the session's
    # runtime_resources, a node preparing an actor deletes and re-extracts the folder
    # the driver on another node runs from.
    members = [cluster.head_node] + [cluster.add_node(**common, resources={f"node{k}": 1.0},
                                                      runtime_env_dir_name=f"runtime_resources_node{k}")
                                     for k in range(1, nodes)]
    # Cluster() records itself as "the" cluster of this machine, which a bare `ray.init()`
    # would join: put back what was there, so that only RAY_ADDRESS / ray.address lead here.
    if previous:
        Path(get_ray_address_file(None)).write_text(previous)
    else:
        Path(get_ray_address_file(None)).unlink(missing_ok=True)
    node_pids = [sorted({info.process.pid for infos in node.all_processes.values() for info in infos})
                 for node in members]
    pids = sorted({pid for group in node_pids for pid in group})
    state = {"address": cluster.address, "nodes": nodes, "cpus_per_node": cpus_per_node, "pids": pids,
             "node_ids": [node.node_id for node in members], "node_pids": node_pids,
             "dashboard": f"http://{cluster.head_node.webui_url}" if cluster.head_node.webui_url else None,
             "metrics_port": metrics_port, "auth": auth,
             "session_dir": cluster.head_node.get_session_dir_path()}
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state_file(cluster.address).write_text(json.dumps(state, indent=1))
    return state


def _use_token_auth() -> None:
    """Ray reads RAY_AUTH_MODE when it is first imported: set it, read the settings again, and
    make the token the nodes and clients share if there is none."""
    import ray
    from ray._private.authentication.authentication_token_setup import generate_and_save_token
    from ray._raylet import AuthenticationTokenLoader

    os.environ["RAY_AUTH_MODE"] = "token"
    ray._raylet.Config.initialize("")
    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        generate_and_save_token()
        loader.reset_cache()


def read_state(address: str) -> dict:
    path = state_file(address)
    if not path.exists():
        raise FileNotFoundError(f"no local cluster was started at {address} (no {path}); "
                                "`rlsys local-cluster start` prints the address to give")
    return json.loads(path.read_text())


def drain_node(address: str, node: int, deadline_s: float) -> dict:
    """Tell Ray that worker node `node` will be preempted in `deadline_s` seconds (Ray's drain,
    as a cloud's preemption notice or KubeRay's scale-down sends it): nothing new is placed
    there, and a run moves its rollout workers off. The node keeps running until `kill-node`."""
    import time

    import ray
    from ray.core.generated import autoscaler_pb2

    state = read_state(address)
    _check_worker_node(state, address, node)
    if state.get("auth") == "token":
        _use_token_auth()
    deadline_ms = time.time_ns() // 1_000_000 + int(deadline_s * 1000)
    accepted, why = ray._raylet.GcsClient(address=address).drain_node(
        state["node_ids"][node], autoscaler_pb2.DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION"),
        "rlsys local-cluster drain-node", deadline_ms)
    if not accepted:
        raise ValueError(f"Ray refused to drain node {node}: {why}")
    return {"node": node, "node_id": state["node_ids"][node], "draining": True, "deadline_s": deadline_s}


def _check_worker_node(state: dict, address: str, node: int) -> None:
    if not 1 <= node < state["nodes"]:
        raise ValueError(f"node {node}: the worker nodes of {address} are 1..{state['nodes'] - 1} "
                         "(node 0, the head, holds the cluster's GCS)")


def kill_node(address: str, node: int) -> dict:
    """SIGKILL worker node `node` (1..N-1) of the cluster: its raylet and every process under it
    (the actors it hosted), at once, as a machine that loses power. Returns its id and pids."""
    import psutil

    state = read_state(address)
    _check_worker_node(state, address, node)
    procs = []
    for pid in state["node_pids"][node]:
        try:
            p = psutil.Process(pid)
            procs += [*p.children(recursive=True), p]
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return {"node": node, "node_id": state["node_ids"][node], "killed": [p.pid for p in procs]}


def stop_local_cluster(address: str, grace_s: float = 10.0) -> list[int]:
    """End every process of the cluster started at `address` (and the workers they spawned);
    the pids that were still running."""
    import psutil

    path = state_file(address)
    state = read_state(address)
    procs = []
    for pid in state["pids"]:
        try:
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    path.unlink()
    return [p.pid for p in procs]
