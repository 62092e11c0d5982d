"""A small threaded HTTP/1.1 server that can close its port (and its open connections) and reopen on the same one."""

from __future__ import annotations

import errno
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from makrx_contracts.harness.errors import IssuerError

__all__ = ["App", "HttpServer", "Reply", "Request", "json_reply", "sleep_unless"]

log = logging.getLogger("harness.issuer")


@dataclass
class Request:
    """One request, independent of the transport (real socket or respx)."""

    method: str
    target: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""
    client_ip: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def form(self) -> dict[str, str]:
        """Form fields (first value of each) from an urlencoded body."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body.strip() else {}


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


class App(Protocol):
    def handle(self, request: Request) -> Reply | None:
        """A reply, or None to drop the connection without one (the server went down meanwhile)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "makrx-fake-keycloak"
    sys_version = ""
    # No idle timeout: a server-side close of an idle keep-alive connection leaves the socket in FIN-WAIT
    # until the client notices, and Linux then refuses to rebind the port (come_up) for up to a minute.
    timeout = None
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed
    # ACK (~40 ms per keep-alive request on Linux).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        request = Request(
            method=self.command,
            target=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_ip=self.client_address[0],
        )
        try:
            reply = self.server.app.handle(request)
        except Exception as exc:  # pragma: no cover - a bug in the app must not kill the thread silently
            log.exception("issuer handler failed")
            reply = json_reply(500, {"error": "server_error", "error_description": repr(exc)})
        if reply is None or self.server.closing:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            headers = dict(reply.headers)
            headers.setdefault("Content-Length", str(len(reply.body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client or go_down() closed the socket
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self.closing = False
        self._connections: set[socket.socket] = set()
        self._dropping: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take seconds.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind over TIME-WAIT (come_up)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
            dropped = request in self._dropping
            self._dropping.discard(request)
        if dropped:
            self.close_request(request)  # SO_LINGER 0 is set: the real close sends RST, no FIN-WAIT
        else:
            super().shutdown_request(request)

    def drop_connections(self, timeout: float = 1.0) -> None:
        """Reset every open connection, as a crashed server's kernel would.

        A plain close would leave the server's side in FIN-WAIT while a pooled client connection sits
        idle, and Linux refuses to bind the port again (come_up) until that clears. The handler thread
        holds the socket through makefile(), so it is woken with shutdown(SHUT_RD) (sends nothing) and
        the last close, with SO_LINGER 0, resets the connection.
        """
        with self._connections_lock:
            connections = list(self._connections)
            self._dropping.update(connections)
        for conn in connections:
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._connections_lock:
                if not self._connections:
                    return
            time.sleep(0.005)


class HttpServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; ``close()`` closes the port and every open
    connection (keep-alive clients included), ``open()`` binds again on the same port."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0, *, name: str = "makrx-issuer") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def open(self, *, retry_for: float = 0.0) -> None:
        with self._lock:
            if self._server is not None:
                return
            deadline = time.monotonic() + retry_for
            while True:
                try:
                    server = _Server((self.host, self.port), self.app)
                    break
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                        time.sleep(0.02)
                        continue
                    raise IssuerError(
                        f"{self.name} cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                        fix="pick another port (port=0 takes a free one) or stop what holds it",
                    ) from None
            self.port = server.server_port
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.name}:{self.port}",
                daemon=True,
            )
            thread.start()
            self._server, self._thread = server, thread

    def close(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.closing = True
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if thread is not None:
            thread.join(timeout=2)


def sleep_unless(seconds: float, interrupted: Callable[[], bool]) -> bool:
    """Sleep up to ``seconds``; return early (True) as soon as ``interrupted()`` turns true (polled every 20 ms)."""
    deadline = time.monotonic() + seconds
    while True:
        if interrupted():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, 0.02))
