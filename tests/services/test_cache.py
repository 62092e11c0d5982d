"""The cache: built once under a lock (also when runs race), no leftovers, reachability for the server user."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from makrx_contracts.harness.services.cache import RunAs, blocked_dir, cached_dir, copy_tree, reachable

NOBODY = RunAs(uid=65534, gid=65534, name="nobody")


def test_racing_builders_build_once(workdir: Path) -> None:
    builds: list[int] = []
    results: list[tuple[Path, bool]] = []

    def build(tmp: Path) -> None:
        builds.append(1)
        time.sleep(0.2)
        (tmp / "done").write_text("x")

    threads = [threading.Thread(target=lambda: results.append(cached_dir(workdir, "k", build))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(builds) == 1
    assert sorted(built for _, built in results) == [False, False, True]
    assert {path for path, _ in results} == {workdir / "k"}
    assert (workdir / "k" / "done").read_text() == "x"


def test_a_failed_build_leaves_nothing_and_stale_temp_dirs_go(workdir: Path) -> None:
    (workdir / ".tmp-k-stale").mkdir()  # a run killed mid-build

    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_dir(workdir, "k", broken)
    assert sorted(p.name for p in workdir.iterdir()) == [".k.lock"]


def test_copy_tree_keeps_modes(workdir: Path) -> None:
    src = workdir / "src"
    (src / "sub").mkdir(parents=True)
    src.chmod(0o700)
    (src / "sub" / "f").write_bytes(b"data" * 1000)
    (src / "sub" / "f").chmod(0o600)
    (src / "link").symlink_to("sub/f")
    copy_tree(src, workdir / "dst")
    assert (workdir / "dst").stat().st_mode & 0o777 == 0o700
    assert (workdir / "dst" / "sub" / "f").read_bytes() == b"data" * 1000
    assert (workdir / "dst" / "sub" / "f").stat().st_mode & 0o777 == 0o600
    assert (workdir / "dst" / "link").readlink() == Path("sub/f")


def test_blocked_dir_names_the_directory_another_user_cannot_enter(workdir: Path) -> None:
    closed = workdir / "closed"  # workdir: every parent enterable (pytest's workdir is not)
    (closed / "inner").mkdir(parents=True)
    closed.chmod(0o700)
    assert blocked_dir(closed / "inner", None) is None  # the current user
    assert blocked_dir(closed / "inner", NOBODY) == closed
    assert not reachable(closed / "inner", NOBODY)
    closed.chmod(0o711)
    assert blocked_dir(closed / "inner", NOBODY) is None
    assert reachable(closed / "inner", NOBODY, bits=0o1)
