"""Boot a backend's instances from a fork server that has its packages imported already.

A fresh interpreter spends about a second importing FastAPI, pydantic, SQLAlchemy and the rest before a
backend answers; a gate boots several instances per target (and alembic), and on a 2-core machine that
import time is most of the CPU it has. Which packages to preload is read from the backend's own source
(its absolute imports of modules outside its tree, its tests aside); its own modules are imported in each
instance, after its environment is set, because settings are commonly read at import.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..process import OwnedProcess, _child_setup
from .source import parse, python_files

__all__ = ["ForkServer", "ForkServerClient", "ForkServerError", "ForkedProcess", "preload_modules"]

_SERVER = Path(__file__).with_name("forkserver.py")
# What `python -m uvicorn` and `python -m alembic` import on their way to the app.
_RUNNERS = (
    "uvicorn.main",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
    "uvloop",
    "httptools",
    "alembic.config",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.runtime.environment",
)


class ForkServerError(OSError):
    """The fork server did not answer as expected (it died, or hung): boot the usual way instead."""


def _modules_in(path: Path) -> Iterable[str]:
    tree = parse(path)
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def preload_modules(source: Path, local_roots: Sequence[Path]) -> list[str]:
    """The modules ``source``'s Python files import that live outside it and ``local_roots`` (the
    backend's own packages are left to each instance), plus what uvicorn and alembic import."""
    local = {entry.name.removesuffix(".py") for root in local_roots if root.is_dir() for entry in root.iterdir()}
    found: dict[str, None] = {}
    for path in python_files(source):
        for module in _modules_in(path):
            if module.split(".")[0] not in local and module != "__future__":
                found.setdefault(module)
    return [*found, *_RUNNERS]


class ForkServerClient:
    """A connection to the fork server named ``name`` (an abstract Unix socket). Requests are answered in
    order; a lock keeps one in flight. The first one waits while the server is still importing."""

    def __init__(self, name: str, *, first_timeout: float = 60.0) -> None:
        self.name = name
        self.first_timeout = first_timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._status: dict[str, Any] | None = None
        self._closed = False

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + 5
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect("\0" + self.name)
                return sock
            except (ConnectionRefusedError, FileNotFoundError):  # not listening yet: it has just started
                sock.close()
                if time.monotonic() >= deadline:
                    raise ForkServerError(f"no fork server listens on {self.name!r}") from None
                time.sleep(0.02)

    def request(self, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise ForkServerError("the connection to the fork server is closed")
            try:
                if self._sock is None:
                    self._sock = self._connect()
                    timeout = max(timeout, self.first_timeout)
                self._sock.settimeout(timeout)
                self._sock.sendall(json.dumps(payload).encode() + b"\n")
                while b"\n" not in self._buffer:
                    data = self._sock.recv(65536)
                    if not data:
                        raise ForkServerError("the fork server has exited")
                    self._buffer += data
            except TimeoutError:
                raise ForkServerError(f"the fork server did not answer within {timeout:.0f} s") from None
            except OSError as exc:
                raise ForkServerError(f"the fork server is gone ({exc})") from None
            line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def status(self) -> dict[str, Any]:
        """The preload's outcome: ``threads`` left running by the imports, modules that ``failed``."""
        if self._status is None:
            self._status = self.request({"op": "status"})
        return self._status

    def usable(self) -> bool:
        """Whether forking is safe: the preload left no thread running (a fork copies no threads)."""
        try:
            return bool(self.status()["threads"] == 1)
        except ForkServerError:
            return False

    def spawn(
        self, module: str, args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path, name: str
    ) -> ForkedProcess:
        """Fork `python -m module args` with exactly ``env`` in ``cwd``, output appended to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        reply = self.request(
            {
                "op": "spawn",
                "module": module,
                "args": list(args),
                "env": dict(env),
                "cwd": str(cwd),
                "log": str(log_path),
            }
        )
        return ForkedProcess(self, reply["pid"], argv=[module, *args], log_path=log_path, name=name)

    def poll(self, pid: int) -> int | None:
        code: int | None = self.request({"op": "poll", "pid": pid})["code"]
        return code

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class ForkServer(ForkServerClient):
    """A fork server process (see forkserver.py) started with ``python`` in ``cwd`` and ``env``, and a
    connection to it. It returns at once: the imports run while the caller goes on. Other processes
    (xdist workers) reach it as ``ForkServerClient(server.name)``."""

    def __init__(
        self, python: str, *, cwd: Path, env: Mapping[str, str], modules: Sequence[str], log_path: Path
    ) -> None:
        super().__init__(f"makrx-forkserver-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self.env = dict(env)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                [python, str(_SERVER), str(cwd), self.name],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=lambda: _child_setup(None, None),
            )
        assert self._popen.stdin is not None
        self._popen.stdin.write(json.dumps(list(modules)).encode() + b"\n")
        self._popen.stdin.flush()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def close(self) -> None:
        """End the server (its remaining children die with it) and reap it. It holds nothing but imported
        modules, so it is killed: an orderly interpreter exit would only spend time tearing them down."""
        super().close()
        self._popen.kill()
        self._popen.wait(5)
        if self._popen.stdin is not None:
            self._popen.stdin.close()


class ForkedProcess(OwnedProcess):
    """An instance forked by a ``ForkServer``: its exit code comes from the server, which is its parent."""

    def __init__(self, server: ForkServerClient, pid: int, *, argv: list[str], log_path: Path, name: str) -> None:
        self.server = server
        self._pid = pid
        self.argv = argv
        self.log_path = log_path
        self.name = name
        self._code: int | None = None

    @property
    def pid(self) -> int:
        return self._pid

    def exit_code(self) -> int | None:
        if self._code is None:
            try:
                self._code = self.server.poll(self._pid)
            except ForkServerError:
                self._code = -9  # the server is gone, and its children die with it
        return self._code
