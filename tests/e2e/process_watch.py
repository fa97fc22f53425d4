"""Watching a command's processes from outside: the sockets they listen on and whether any of
them outlives the command (psutil; root sees every process's sockets)."""

from __future__ import annotations

import ipaddress
import subprocess
import time


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    return addr.is_loopback


class ProcessWatch:
    """Polls `proc`'s descendants every `poll_s`: every one seen, and every listening socket
    they held as (process name, address, port)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.seen, self.listening = proc, {}, set()

    def poll(self) -> None:
        import psutil

        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in family:
            try:
                self.seen.setdefault(p.pid, p)
                name = p.name()
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN:
                        self.listening.add((name, c.laddr.ip, c.laddr.port))
            except psutil.Error:
                pass

    def run(self, timeout_s: float, poll_s: float = 0.5) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "the command did not finish in time"
            self.poll()
            time.sleep(poll_s)
        return self.proc.returncode

    def off_loopback(self) -> list[tuple[str, str, int]]:
        return sorted(s for s in self.listening if not _loopback(s[1]))

    def survivors(self, grace_s: float = 10.0) -> list[str]:
        """Processes of the command still running `grace_s` after it ended."""
        deadline = time.monotonic() + grace_s
        while True:
            alive = [p for p in self.seen.values() if p.pid != self.proc.pid and p.is_running()
                     and p.status() != "zombie"]
            if not alive or time.monotonic() > deadline:
                return [f"{p.pid} {' '.join(p.cmdline())[:60]}" for p in alive]
            time.sleep(0.5)
