"""Free loopback ports and per-test loopback source addresses."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading

__all__ = ["SourceAddresses", "free_port", "port_is_bound"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel reports free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_bound(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class SourceAddresses:
    """Hands out distinct loopback source addresses (127.a.b.c) for client connections.

    Rate limiters key on the client IP; all of 127.0.0.0/8 is loopback on Linux, so each test gets
    its own address and never shares a bucket with another test. The second octet is random per
    run (and per xdist worker) so two runs against one shared Redis do not share buckets either.
    """

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed if seed is not None else os.getpid() ^ int.from_bytes(os.urandom(4)))
        self._second = rng.randrange(16, 250)
        self._counter = itertools.count(rng.randrange(0, 1000))
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            n = next(self._counter) % (250 * 250)
        return f"127.{self._second}.{n // 250 + 1}.{n % 250 + 2}"
