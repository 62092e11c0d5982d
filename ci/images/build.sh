#!/usr/bin/env bash
# Build the local stand-ins for the official redis:7 and postgres:16 images WITHOUT any registry:
# a root filesystem of busybox-static (/bin/sh and the usual tools), the server binaries and the
# shared libraries ldd finds for them, imported with `docker import`. See ci/images/README.md.
#
#   bash ci/images/build.sh [--redis-tag redis:7] [--postgres-tag postgres:16] [--force]
#
# Sources: busybox-static, redis-tools, libjemalloc2 and liblzf1 from Debian (apt-get download:
# nothing is installed on the host); Postgres 16 from the pgserver wheel on PyPI (pip download).
# Downloads are kept in $MAKRX_IMAGE_CACHE (default /var/cache/makrx-contracts/images). An image
# that already exists with the same recipe hash is left alone unless --force.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
redis_tag="redis:7"
postgres_tag="postgres:16"
force=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --redis-tag) redis_tag="$2"; shift 2 ;;
        --postgres-tag) postgres_tag="$2"; shift 2 ;;
        --force) force=1; shift ;;
        *) echo "usage: $0 [--redis-tag TAG] [--postgres-tag TAG] [--force]" >&2; exit 2 ;;
    esac
done

PGSERVER_VERSION="0.1.4"  # ships PostgreSQL 16.2
cache="${MAKRX_IMAGE_CACHE:-/var/cache/makrx-contracts/images}"
python="${PYTHON:-python3}"
mkdir -p "$cache"
work="$(mktemp -d "${TMPDIR:-/tmp}/makrx-images-XXXXXX")"
trap 'rm -rf "$work"' EXIT

say() { echo "ci/images/build.sh: $*"; }
die() { echo "ci/images/build.sh: error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "no docker CLI on PATH (run ci/docker-setup.sh)"
docker info >/dev/null 2>&1 || die "the docker engine does not answer (run ci/docker-setup.sh)"

recipe_hash() {  # what an image is built from: this script, the entrypoints, the pinned versions
    cat "$here/build.sh" "$here/load_image.py" "$here/redis-entrypoint.sh" "$here/postgres-entrypoint.sh" | sha256sum | cut -c1-16
}
recipe="$(recipe_hash)"
LABEL_KEY="org.makrx-contracts.image-recipe"

up_to_date() {
    [ "$force" = 0 ] && [ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null)" = "$recipe" ]
}

# --- downloads ----------------------------------------------------------------------------------
debs="$cache/debs"
mkdir -p "$debs"
fetch_deb() {  # fetch_deb PACKAGE: the .deb of the candidate version, cached
    local pkg="$1" version file
    version="$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')"
    [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt knows no package $pkg (run apt-get update)"
    file="$(ls "$debs/${pkg}_"*.deb 2>/dev/null | grep -F "_$(printf '%s' "$version" | sed 's/:/%3a/')_" | head -n1 || true)"
    if [ -z "$file" ]; then
        (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" >/dev/null 2>&1) || die "apt-get download $pkg failed (run apt-get update)"
        file="$(ls "$debs/${pkg}_"*.deb | grep -F "_$(printf '%s' "$version" | sed 's/:/%3a/')_" | head -n1)"
    fi
    echo "$file"
}

extract_debs() {  # extract_debs DIR PACKAGE...
    local dir="$1"; shift
    mkdir -p "$dir"
    for pkg in "$@"; do dpkg-deb -x "$(fetch_deb "$pkg")" "$dir"; done
}

# --- rootfs helpers -------------------------------------------------------------------------------
new_rootfs() {  # new_rootfs DIR: busybox-static as /bin/sh & co, /etc/passwd with the service user
    local root="$1" user="$2"
    mkdir -p "$root"/{bin,etc,tmp,usr/local/bin,var/run}
    chmod 1777 "$root/tmp"
    install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:999:999:%s:/home/%s:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        "$user" "$user" "$user" > "$root/etc/passwd"
    printf 'root:x:0:\n%s:x:999:\nnogroup:x:65534:\n' "$user" > "$root/etc/group"
    printf 'hosts: files dns\npasswd: files\ngroup: files\n' > "$root/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
}

add_libs() {  # add_libs ROOT LIBPATH FILE...: copy every shared library ldd resolves, and the loader
    local root="$1" libpath="$2"; shift 2
    local missing
    missing="$(LD_LIBRARY_PATH="$libpath" ldd "$@" 2>/dev/null | grep 'not found' | sort -u || true)"
    [ -z "$missing" ] || die "libraries not found for $*: $missing"
    LD_LIBRARY_PATH="$libpath" ldd "$@" 2>/dev/null \
        | awk '/=> \// {print $3} /^\t\/.* \(0x/ {print $1}' | sort -u \
        | while read -r lib; do
            local dest="$root/lib/x86_64-linux-gnu/$(basename "$lib")"
            case "$lib" in /lib64/*) dest="$root$lib" ;; esac
            mkdir -p "$(dirname "$dest")"
            [ -e "$dest" ] || cp -L "$lib" "$dest"
        done
    ln -sfn lib "$root/usr/lib" 2>/dev/null || true
}

import_image() {  # import_image ROOT TAG CONFIG_JSON: load ROOT as image TAG with that image config
    local root="$1" tag="$2" config="$3" old
    old="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
    "$python" "$here/load_image.py" "$root" "$tag" "$config" || die "docker load of $tag failed"
    if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]; then
        docker rmi "$old" >/dev/null 2>&1 || true  # the previous build, now untagged
    fi
    say "built $tag ($(du -sh "$root" | cut -f1) root filesystem)"
}

labels() {  # the labels every image gets, as JSON members
    printf '"Labels": {"%s": "%s", "org.makrx-contracts.local-build": "true"}' "$LABEL_KEY" "$recipe"
}

started=$SECONDS
mkdir -p "$work/busybox"
if ! up_to_date "$redis_tag" || ! up_to_date "$postgres_tag"; then
    dpkg-deb -x "$(fetch_deb busybox-static)" "$work/busybox"
fi

# --- redis:7 --------------------------------------------------------------------------------------
if up_to_date "$redis_tag"; then
    say "$redis_tag is up to date (recipe $recipe)"
else
    extract_debs "$work/redis-debs" redis-tools libjemalloc2 liblzf1
    root="$work/redis-root"
    new_rootfs "$root" redis
    # Debian ships one binary; it acts as the server when its name is redis-server.
    install -m 0755 "$work/redis-debs/usr/bin/redis-check-rdb" "$root/usr/local/bin/redis-server"
    install -m 0755 "$work/redis-debs/usr/bin/redis-cli" "$root/usr/local/bin/redis-cli"
    install -m 0755 "$here/redis-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    add_libs "$root" "$work/redis-debs/usr/lib/x86_64-linux-gnu" \
        "$root/usr/local/bin/redis-server" "$root/usr/local/bin/redis-cli"
    version="$("$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/lib/x86_64-linux-gnu" \
        "$root/usr/local/bin/redis-server" --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
    case "$version" in 7.*) ;; *) die "redis-tools gave Redis $version, not 7.x: the tag $redis_tag would lie" ;; esac
    mkdir -p "$root/data"
    chown 999:999 "$root/data"
    import_image "$root" "$redis_tag" "{
        \"Env\": [\"PATH=/usr/local/bin:/bin\", \"REDIS_VERSION=$version\"],
        \"Entrypoint\": [\"/usr/local/bin/docker-entrypoint.sh\"], \"Cmd\": [\"redis-server\"],
        \"User\": \"redis\", \"WorkingDir\": \"/data\", \"ExposedPorts\": {\"6379/tcp\": {}},
        \"StopSignal\": \"SIGTERM\", $(labels)}"
fi

# --- postgres:16 ----------------------------------------------------------------------------------
if up_to_date "$postgres_tag"; then
    say "$postgres_tag is up to date (recipe $recipe)"
else
    wheels="$cache/wheels"
    mkdir -p "$wheels"
    wheel="$(ls "$wheels"/pgserver-"$PGSERVER_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$wheel" ]; then
        "$python" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
            --python-version 3.11 --dest "$wheels" "pgserver==$PGSERVER_VERSION" 2>/dev/null \
            || die "pip download pgserver==$PGSERVER_VERSION failed"
        wheel="$(ls "$wheels"/pgserver-"$PGSERVER_VERSION"-*.whl | head -n1)"
    fi
    root="$work/postgres-root"
    new_rootfs "$root" postgres
    mkdir -p "$root/opt"
    # Keep the wheel's layout: the binaries' RPATH is $ORIGIN/../../../pgserver.libs.
    "$python" - "$wheel" "$root/opt" <<'PY'
import sys, zipfile
keep = ("pgserver/pginstall/share/", "pgserver.libs/", "pgserver/pginstall/lib/postgresql/")
bins = {f"pgserver/pginstall/bin/{n}" for n in ("postgres", "initdb", "psql", "pg_ctl", "pg_isready", "createdb")}
with zipfile.ZipFile(sys.argv[1]) as whl:
    for info in whl.infolist():
        name = info.filename
        if (name in bins or name.startswith(keep)) and "/pgxs/" not in name and not name.endswith("/vector.so"):
            path = whl.extract(info, sys.argv[2])
            if name in bins or name.endswith(".so") or ".so." in name:
                import os
                os.chmod(path, 0o755)
PY
    pg="$root/opt/pgserver/pginstall"
    add_libs "$root" "$root/opt/pgserver.libs" "$pg"/bin/* "$pg"/lib/postgresql/*.so
    version="$("$root/lib64/ld-linux-x86-64.so.2" --library-path "$root/lib/x86_64-linux-gnu" \
        "$pg/bin/postgres" --version | awk '{print $3}')"
    case "$version" in 16.*) ;; *) die "pgserver gave PostgreSQL $version, not 16.x: the tag $postgres_tag would lie" ;; esac
    install -m 0755 "$here/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
    mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/home/postgres"
    chmod 700 "$root/var/lib/postgresql/data"
    chown -R 999:999 "$root/var/lib/postgresql" "$root/var/run/postgresql" "$root/home/postgres"
    # SIGINT is Postgres's fast shutdown: SIGTERM (smart) waits for clients and docker stop then
    # needs its full 10 s timeout.
    import_image "$root" "$postgres_tag" "{
        \"Env\": [\"PATH=/opt/pgserver/pginstall/bin:/usr/local/bin:/bin\",
                \"PGDATA=/var/lib/postgresql/data\", \"PG_VERSION=$version\"],
        \"Entrypoint\": [\"/usr/local/bin/docker-entrypoint.sh\"], \"Cmd\": [\"postgres\"],
        \"User\": \"postgres\", \"WorkingDir\": \"/\", \"ExposedPorts\": {\"5432/tcp\": {}},
        \"StopSignal\": \"SIGINT\", $(labels)}"
fi
say "done in $((SECONDS - started)) s"
