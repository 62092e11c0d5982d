"""The HTTP client contracts use: real HTTP, its own loopback source address, every exchange kept."""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import timings

__all__ = ["ContractClient", "tls_context"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client of the run: httpx builds one per client otherwise,
    loading the CA bundle each time (~20 ms of CPU), and a gate creates dozens of clients."""
    return httpx.create_ssl_context()


class ContractClient(httpx.Client):
    """An ``httpx.Client`` bound to one target that records each response for failure messages.

    When the target is on loopback, requests leave from ``source_address`` (a distinct 127.x.y.z
    per test), so the target's per-IP rate limiter never sees two tests as one client.
    """

    def __init__(
        self, base_url: str, *, source_address: str | None = None, timeout: float = 10.0, **kwargs: Any
    ) -> None:
        host = urlsplit(base_url).hostname or ""
        self.source_address = source_address if host in _LOOPBACK or host.startswith("127.") else None
        kwargs.setdefault("verify", tls_context())
        transport = (
            httpx.HTTPTransport(local_address=self.source_address, verify=kwargs["verify"])
            if self.source_address
            else None
        )
        self.exchanges: list[httpx.Response] = []
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            event_hooks={"response": [self._record]},
            **kwargs,
        )

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        # Time spent waiting on the target, apart from the harness's own (see bench/bench_gate.py).
        with timings.phase("requests"):
            return super().send(request, **kwargs)

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append(response)
