"""The template cluster embedded Postgres starts from: initdb'd once per install and user into the cache,
copied by each run instead of running initdb again."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

from .binaries import Binaries
from .cache import RunAs, cache_root, cached_dir
from .owned import PG_DB, PG_USER
from .server_process import private_dir, run_to_end

__all__ = ["bootstrap_password", "template"]

_INITDB_ARGS = (
    "-U",
    PG_USER,
    "-A",
    "scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
    "--wal-segsize=1",
)
_TEMPLATE_FORMAT = 1  # bump when the template's contents change
_META = "template.json"


def template(exe: Path, binaries: Binaries, who: RunAs | None, cache_dir: Path | None) -> tuple[Path, bool]:
    """An initdb'd cluster (user and database ``makrx``, shut down cleanly) in the cache; (path, built_now).

    Keyed by the binaries and the initdb settings; each run copies it (~0.1 s) instead of running
    initdb (~0.5 s). The superuser's password in it is a bootstrap secret, replaced per run.
    """
    cache = cache_root(cache_dir)
    settings = json.dumps([_TEMPLATE_FORMAT, binaries.key, _INITDB_ARGS, PG_DB, who.uid if who else os.geteuid()])
    key = f"pg{binaries.version}-{hashlib.sha256(settings.encode()).hexdigest()[:10]}"

    def build(tmp: Path) -> None:
        data = private_dir(tmp / "data", who)
        password = secrets.token_urlsafe(24)
        pwfile = tmp / "bootstrap.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if who is not None:
            os.chown(pwfile, who.uid, who.gid)
        log = tmp / "build.log"
        try:
            run_to_end(
                [str(exe.parent / "initdb"), "-D", str(data), *_INITDB_ARGS, f"--pwfile={pwfile}"],
                log_path=log,
                who=who,
                cwd=tmp,
                what=f"initdb ({binaries.source})",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        script = tmp / "bootstrap.sql"
        script.write_text(f'CREATE DATABASE "{PG_DB}" OWNER "{PG_USER}";\n')
        script.chmod(0o644)
        # Single-user mode reads SQL on stdin; sh does the redirect (ManagedProcess gives /dev/null).
        run_to_end(
            [
                "/bin/sh",
                "-c",
                'exec "$0" --single -D "$1" -c fsync=off -c min_wal_size=2MB -c max_wal_size=4MB postgres < "$2"',
                str(exe),
                str(data),
                str(script),
            ],
            log_path=log,
            who=who,
            cwd=tmp,
            what=f"creating database {PG_DB!r} in the template",
        )
        meta = tmp / _META
        meta.write_text(
            json.dumps(
                {
                    "bootstrap_password": password,
                    "version": binaries.version,
                    "source": binaries.source,
                    "initdb": _INITDB_ARGS,
                }
            )
        )
        meta.chmod(0o600)

    return cached_dir(cache / "templates", key, build)


def bootstrap_password(template_dir: Path) -> str:
    """The superuser password of the template at ``template_dir``, for the first login before it is replaced."""
    return str(json.loads((template_dir / _META).read_text())["bootstrap_password"])
