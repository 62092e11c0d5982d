#!/bin/sh
# Entrypoint of the local postgres:16 stand-in image (see ci/images/README.md). It honours the
# official image's environment: POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
# POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user), POSTGRES_HOST_AUTH_METHOD
# (default scram-sha-256) and PGDATA. The image's USER is `postgres` (uid 999): Postgres never runs as
# root. The first start initialises the cluster; later starts (docker stop / docker start) reuse it.
set -eu

# `docker run IMAGE -c fsync=off` and `docker run IMAGE postgres -c fsync=off` both start the server.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
    exec "$@"
fi
shift

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "error: POSTGRES_PASSWORD is not set; set it, or POSTGRES_HOST_AUTH_METHOD=trust" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile=""
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    fi
    initdb -D "$PGDATA" -U "$user" ${pwfile:+"--pwfile=$pwfile"} -E UTF8 --locale=C \
        --auth-local=trust --auth-host="$auth" --no-sync --no-instructions
    [ -z "$pwfile" ] || rm -f "$pwfile"
    printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        quoted="$(printf '%s' "$db" | sed 's/"/""/g')"
        # Single-user mode: no server has to be started and stopped just to create the database.
        out="$(printf 'CREATE DATABASE "%s";\n' "$quoted" | postgres --single -D "$PGDATA" -c fsync=off postgres 2>&1)"
        if printf '%s' "$out" | grep -q -E '^(ERROR|FATAL|PANIC):'; then
            printf '%s\n' "$out" >&2
            exit 1
        fi
    fi
    echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db, host auth $auth)"
fi

exec postgres -D "$PGDATA" "$@"
