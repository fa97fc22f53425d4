"""Ports for torch.distributed rendezvous: a free one to hand out, and a store that listens on
one address only.

torch's `TCPStore` server listens on every interface of its machine (`*:PORT`), whatever
host it is given; a store that should stay on loopback (a local run) or on the node's
cluster address is therefore given a socket bound to that address (`master_listen_fd`).
"""

from __future__ import annotations

import datetime
import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_store(host: str, port: int, timeout_s: float, world_size: int | None = None):
    """A `TCPStore` server listening on `host:port` only (port 0: one the OS picks, so no
    other process can take it between choosing and binding); its `.port` says which."""
    import torch.distributed as dist

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    bound = sock.getsockname()[1]
    # The store owns the descriptor from here on (detach: Python must not close it).
    return dist.TCPStore(host, bound, world_size, True, datetime.timedelta(seconds=timeout_s),
                         wait_for_workers=False, master_listen_fd=sock.detach())
