"""A fork server for one backend: it imports the backend's third-party packages once, then forks every
`python -m MODULE ARGS` run the harness asks for (uvicorn instances, alembic), so each skips the second
of imports a fresh interpreter pays.

The harness runs this file as a script with the backend's own interpreter (which need not have the
harness installed), so it uses the standard library only: `python forkserver.py CWD NAME`, the module
list as one JSON line on stdin. It listens on the abstract Unix socket NAME (no file to clean up;
several clients: every xdist
worker of a run) for JSON lines — ``{"op": "status"}`` answered
``{"threads": N, "failed": [...], "python_env": {...}}``,
``{"op": "spawn", ...}`` answered ``{"pid": N}``, ``{"op": "poll", "pid": N}`` answered
``{"code": int | null}`` — and accepts them only once the imports are done. It ends when its stdin
closes; its children die with it (PR_SET_PDEATHSIG), as it dies with the process that started it.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)


def _child(request: dict[str, Any], server: int, devnull: int, leading: int) -> None:
    """In the forked child: become what `cd CWD && env -i ENV python -m MODULE ARGS` would be. Never returns.
    Closing ``leading`` tells the server that the child leads its own process group."""
    code: Any = 1
    try:
        os.setsid()
        os.close(leading)
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server:  # the server died before the line above took effect
            os._exit(1)
        # `ps` and psutil name() show what runs here; the command line stays the server's.
        _libc.prctl(_PR_SET_NAME, request["module"].encode()[:15], 0, 0, 0)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 65536)  # the server's sockets
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]
        sys.argv = [request["module"], *request["args"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code or 0)


def _preload(modules: list[str]) -> list[str]:
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
        except SystemExit as exc:
            failed.append(f"{name}: SystemExit: {exc}")
    return failed


def serve(cwd: str, name: str) -> None:
    # Imports resolve as under `python -m` in the backend's directory, never against this file's folder.
    sys.path[0] = cwd
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0" + name)
    listener.listen(64)  # clients wait in the backlog until the imports are done
    control = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    modules = json.loads(os.fdopen(os.dup(control), "rb").readline() or b"[]")
    failed = _preload(modules)
    # Forking a process with threads copies locks held by threads that do not exist in the child.
    status = {
        "threads": threading.active_count(),
        "failed": failed,
        # Read by the interpreter at start: a run that needs other values cannot be forked from here.
        "python_env": {k: v for k, v in os.environ.items() if k.startswith("PYTHON")},
    }
    server = os.getpid()
    codes: dict[int, int] = {}

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "spawn":
            # The pid is answered once the child leads its own group: a signal sent to that group
            # (killpg) at once would otherwise find no group and be lost.
            led, leading = os.pipe()
            pid = os.fork()
            if pid == 0:
                _child(request, server, devnull, leading)
            os.close(leading)
            os.read(led, 1)  # EOF once the child closed its end (or died)
            os.close(led)
            return {"pid": pid}
        if request["op"] == "poll":
            pid = request["pid"]
            if pid not in codes:
                try:
                    done, wait_status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, wait_status = pid, 0
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(wait_status)
            return {"code": codes.get(pid)}
        return status

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(control, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                client, _ = listener.accept()
                selector.register(client, selectors.EVENT_READ)
                pending[client] = b""
            elif key.fileobj == control:
                if not os.read(control, 4096):  # whoever started the server is gone
                    return
            else:
                client = key.fileobj  # type: ignore[assignment]
                data = client.recv(65536)
                if not data:
                    selector.unregister(client)
                    client.close()
                    del pending[client]
                    continue
                pending[client] += data
                while b"\n" in pending[client]:
                    line, pending[client] = pending[client].split(b"\n", 1)
                    client.sendall(json.dumps(answer(json.loads(line))).encode() + b"\n")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
