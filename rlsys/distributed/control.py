"""Requests to a running job from outside it: `rlsys scale RUN --rollout N`, a script, or
anyone who can reach the cluster. A small named actor holds them until the loop takes
them between iterations; the run folder's `control.json` says where to find it."""

from __future__ import annotations

import json
from pathlib import Path

NAMESPACE = "rlsys"


def control_name(run_name: str) -> str:
    return f"rlsys-control-{run_name}"


class RunControl:
    def __init__(self) -> None:
        self.rollout: int | None = None

    def scale(self, rollout: int) -> str:
        if rollout < 1:
            raise ValueError(f"--rollout {rollout}: a run needs at least 1 rollout worker")
        self.rollout = rollout
        return f"{rollout} rollout worker(s) requested; the run applies it before its next iteration"

    def take(self) -> dict:
        """The pending requests, cleared."""
        out = {"rollout": self.rollout} if self.rollout is not None else {}
        self.rollout = None
        return out


def start_control(run_dir: Path):
    """The run's control actor (it ends with the job), and `control.json` that locates it."""
    import ray

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = control_name(run_dir.name)
    # on the driver's node: a lost worker node must not take the job's control with it
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    handle = ray.remote(num_cpus=0)(RunControl).options(name=name, namespace=NAMESPACE, get_if_exists=True,
                                                        scheduling_strategy=here).remote()
    ray.get(handle.take.remote())  # up, and no request of an earlier job left in it
    where = {"actor": name, "namespace": NAMESPACE, "ray_address": ray.get_runtime_context().gcs_address}
    (run_dir / "control.json").write_text(json.dumps(where, indent=2))
    return handle


def request_scale(run: str, rollout: int, address: str | None) -> str:
    """`rlsys scale`: find the run's control actor (by run folder or run name) and ask."""
    import os

    import ray

    folder = Path(run)
    if (folder / "control.json").is_file():
        where = json.loads((folder / "control.json").read_text())
        name, address = where["actor"], address or os.environ.get("RAY_ADDRESS") or where["ray_address"]
    else:
        name, address = control_name(Path(run).name), address or os.environ.get("RAY_ADDRESS") or "auto"
    if "RAY_AUTH_MODE" not in os.environ and (Path.home() / ".ray" / "auth_token").is_file():
        # A local Ray turns token auth on by itself when this token exists; a client that joins
        # it must ask for token mode, or the cluster refuses it.
        os.environ["RAY_AUTH_MODE"] = "token"
        ray._raylet.Config.initialize("")  # Ray caches its settings at import: read the mode again
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    try:
        handle = ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        raise SystemExit(f"rlsys scale: no running job has the run {run!r} (no actor {name} in the Ray at "
                         f"{address}); give the run folder or its name, and --address of its cluster") from None
    return ray.get(handle.scale.remote(rollout))
