"""The on-disk cache of server binaries and template clusters, and the unprivileged user servers run as."""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServiceError

__all__ = [
    "CACHE_ENV",
    "USER_ENV",
    "RunAs",
    "blocked_dir",
    "cache_root",
    "cached_dir",
    "copy_tree",
    "link_file",
    "link_tree",
    "reachable",
    "require_reachable",
    "run_as",
]

CACHE_ENV = "MAKRX_CACHE_DIR"
USER_ENV = "MAKRX_SERVICE_USER"
_ROOT_CACHE = Path("/var/cache/makrx-contracts")
_LOCK_TIMEOUT = 180.0  # seconds to wait while another run builds the same cache entry


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account servers run as when the harness runs as root (Postgres refuses root)."""

    uid: int
    gid: int
    name: str


def run_as() -> RunAs | None:
    """Who the servers run as: None (the current user) unless we are root, then ``nobody`` or $MAKRX_SERVICE_USER."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(USER_ENV) or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ServiceError(
            f"running as root, servers must run as an unprivileged user, but user {name!r} does not exist",
            fix=f"set {USER_ENV} to an existing non-root user, or run pytest as a non-root user",
        ) from None
    if entry.pw_uid == 0:
        raise ServiceError(
            f"{USER_ENV}={name!r} is root; Postgres refuses to run as root",
            fix=f"set {USER_ENV} to a non-root user such as 'nobody'",
        )
    return RunAs(entry.pw_uid, entry.pw_gid, name)


def cache_root(cache_dir: Path | None = None) -> Path:
    """The cache directory: ``cache_dir``, else $MAKRX_CACHE_DIR, else /var/cache/makrx-contracts (root)
    or $XDG_CACHE_HOME/makrx-contracts (default ~/.cache). Created when missing."""
    if cache_dir is None and os.environ.get(CACHE_ENV):
        cache_dir = Path(os.environ[CACHE_ENV])
    if cache_dir is None:
        if os.geteuid() == 0:
            cache_dir = _ROOT_CACHE
        else:
            cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "makrx-contracts"
    cache_dir = cache_dir.expanduser().absolute()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise ServiceError(
            f"cannot create the cache directory {cache_dir}",
            details=str(exc),
            fix=f"set {CACHE_ENV} to a writable directory",
        ) from exc
    return cache_dir


def _allows(st: os.stat_result, who: RunAs, bits: int) -> bool:
    if st.st_uid == who.uid:
        mode = st.st_mode >> 6
    elif st.st_gid == who.gid:
        mode = st.st_mode >> 3
    else:
        mode = st.st_mode
    return mode & bits == bits


def blocked_dir(path: Path, who: RunAs | None) -> Path | None:
    """The first directory on the way to (and including) ``path`` that ``who`` cannot enter, else None."""
    if who is None:
        return None
    path = path.absolute()
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError:
            return directory
        if stat.S_ISDIR(st.st_mode) and not _allows(st, who, 0o1):
            return directory
    return None


def reachable(path: Path, who: RunAs | None, *, bits: int = 0o4) -> bool:
    """True when ``who`` (None: the current user) can enter every directory up to ``path`` and has
    ``bits`` (0o4 read, 0o1 execute) on ``path`` itself."""
    if who is None:
        return True
    try:
        return blocked_dir(path.parent, who) is None and _allows(path.stat(), who, bits)
    except OSError:
        return False


def require_reachable(path: Path, who: RunAs | None, *, what: str, fix: str) -> None:
    """Raise a ServiceError naming the blocking directory when ``who`` cannot reach ``path``."""
    blocked = blocked_dir(path, who)
    if blocked is not None and who is not None:
        mode = oct(blocked.stat().st_mode & 0o777) if blocked.exists() else "missing"
        raise ServiceError(
            f"{what} {path} is not reachable for user {who.name!r} (uid {who.uid}), who runs the servers "
            f"because the harness runs as root: {blocked} is mode {mode}",
            fix=fix,
        )


@contextmanager
def _file_lock(path: Path, timeout: float = _LOCK_TIMEOUT) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"timed out after {timeout:.0f}s waiting for the cache lock {path} "
                        "(another run is building the same cache entry)",
                        fix=f"check for a hung run holding it, or point {CACHE_ENV} elsewhere",
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def cached_dir(parent: Path, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """``parent/key``, built once: ``build(tmp)`` fills a temp dir that is then renamed into place.

    A file lock makes a racing run wait instead of building twice; a run killed mid-build leaves only
    a ``.tmp-`` dir, removed by the next builder. Returns ``(path, built_now)``.
    """
    final = parent / key
    if final.is_dir():
        return final, False
    parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    with _file_lock(parent / f".{key}.lock"):
        if final.is_dir():
            return final, False
        for stale in parent.glob(f".tmp-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".tmp-{key}-"))
        try:
            tmp.chmod(0o755)
            build(tmp)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def link_file(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst``, or copy it (with its mode) where a link is impossible."""
    _link_or_copy(os.fspath(src), os.fspath(dst))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
            raise
        shutil.copy2(src, dst)


def link_tree(src: Path, dst: Path, *, ignore: tuple[str, ...] = ()) -> None:
    """Replicate ``src`` at ``dst`` with hard links (copies across file systems); dirs world-readable."""
    shutil.copytree(
        src, dst, symlinks=True, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(*ignore) if ignore else None
    )
    for root, _dirs, _files in os.walk(dst):
        os.chmod(root, 0o755)


def copy_tree(src: Path, dst: Path, owner: RunAs | None = None) -> None:
    """Copy ``src`` to a new ``dst`` keeping modes, owned by ``owner`` (sendfile; fast for a data dir)."""
    uid, gid = (owner.uid, owner.gid) if owner else (-1, -1)
    src_s = os.fspath(src)
    for root, dirs, files in os.walk(src_s):
        rel = os.path.relpath(root, src_s)
        target = os.fspath(dst) if rel == "." else os.path.join(dst, rel)
        os.mkdir(target, stat.S_IMODE(os.stat(root).st_mode))
        os.chown(target, uid, gid)
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), os.path.join(target, name))
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.symlink(os.readlink(path), os.path.join(target, name))
                continue
            _copy_file(path, os.path.join(target, name), uid, gid)


def _copy_file(src: str, dst: str, uid: int, gid: int) -> None:
    fin = os.open(src, os.O_RDONLY)
    try:
        st = os.fstat(fin)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
        try:
            offset = 0
            while offset < st.st_size:
                sent = os.sendfile(fout, fin, offset, st.st_size - offset)
                if sent == 0:
                    break
                offset += sent
            os.fchmod(fout, stat.S_IMODE(st.st_mode))
            if uid != -1:
                os.fchown(fout, uid, gid)
        finally:
            os.close(fout)
    finally:
        os.close(fin)
