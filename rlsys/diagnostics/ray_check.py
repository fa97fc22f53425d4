"""Whether Ray starts here on 127.0.0.1 only: a local Ray of one CPU, one task, and the
listening sockets of the processes it started (none may be on another address)."""

from __future__ import annotations

import os
import time


def loopback_ray() -> dict:
    """{"ok", "seconds", "node_ip", "listening": [addresses], "problem"}; Ray stopped again."""
    import psutil

    started = time.perf_counter()
    out = {"ok": False, "seconds": None, "node_ip": None, "listening": [], "problem": None}
    try:
        import ray

        from rlsys.config import RayConfig
        from rlsys.distributed.cluster import init_ray

        init_ray(RayConfig(num_cpus=1), quiet=True)
        out["node_ip"] = ray.get(ray.remote(num_cpus=0)(_node_ip).remote(), timeout=60)
        ours = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)} | {os.getpid()}
        out["listening"] = sorted({c.laddr.ip for c in psutil.net_connections(kind="tcp")
                                   if c.status == psutil.CONN_LISTEN and c.pid in ours})
        outside = [ip for ip in out["listening"] if not is_loopback(ip)]
        out["ok"] = out["node_ip"] == "127.0.0.1" and not outside
        if not out["ok"]:
            out["problem"] = f"Ray reports node {out['node_ip']} and listens on {', '.join(outside) or 'loopback'}"
    except Exception as exc:  # noqa: BLE001 (the doctor reports, whatever went wrong)
        out["problem"] = f"{type(exc).__name__}: {exc}"
    finally:
        if "ray" in locals() and ray.is_initialized():
            ray.shutdown()
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8 and ::1, also written as IPv4 in IPv6 (::ffff:127.0.0.1)."""
    import ipaddress

    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _node_ip() -> str:
    import ray

    return ray.util.get_node_ip_address()
