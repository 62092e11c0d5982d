"""The attacker's key server that jku/x5u tokens point at: it serves a real JWKS and records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._http import HttpServer, Reply, Request
from .key import Key, generated_key

__all__ = ["ATTACKER_LABEL", "AttackerServer", "Hit"]

ATTACKER_LABEL = "attacker-0"


@dataclass(frozen=True)
class Hit:
    """One request the attacker server received: proof that a backend followed a jku/x5u header."""

    at: float
    method: str
    path: str
    client_ip: str
    user_agent: str


class AttackerServer:
    """A server a backend must never contact. It serves a JWKS with the attacker's key at any path ending in
    ``.json`` (so a backend that follows ``jku`` would accept the forged token) and the key's certificate at
    any path ending in ``.pem`` (for ``x5u``). Every request is recorded; ``was_fetched()`` tells.
    """

    def __init__(self, *, seed: int | None = 0, realm: str = "attacker") -> None:
        private = generated_key("RSA", 2048, seed, ATTACKER_LABEL)
        self.key = Key(private, alg="RS256", use="sig", realm=realm, label=ATTACKER_LABEL, index=0)
        self.key.state = "active"
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._server = HttpServer(self, name="makrx-attacker")

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> AttackerServer:
        self._server.host, self._server.port = host, port
        self._server.open()
        return self

    def stop(self) -> None:
        self._server.close()

    def __enter__(self) -> AttackerServer:
        return self if self._server.is_open else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def jku(self, tag: str = "jwks") -> str:
        """A jku URL on this server; ``tag`` shows up in the recorded path, so hits can be told apart."""
        return f"{self.url}/{tag}/jwks.json"

    def x5u(self, tag: str = "x5u") -> str:
        return f"{self.url}/{tag}/cert.pem"

    # -- observations -----------------------------------------------------------------------------

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def was_fetched(self, path_contains: str | None = None) -> bool:
        """True when anything (optionally: a path containing ``path_contains``) was requested."""
        return any(path_contains is None or path_contains in hit.path for hit in self.hits)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()

    # -- the app ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self._hits.append(
                Hit(time.time(), request.method, request.target, request.client_ip, request.header("user-agent"))
            )
        if request.path.endswith(".pem"):
            return Reply(200, self.key.certificate_pem, {"Content-Type": "application/x-pem-file"})
        if request.path.endswith(".json"):
            body: Any = {"keys": [self.key.jwk()]}
            return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
        return Reply(404, b"not found", {"Content-Type": "text/plain"})
