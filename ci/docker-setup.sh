#!/usr/bin/env bash
# Give this machine a Docker engine and the local redis:7 / postgres:16 images, WITHOUT any registry,
# so the docker provider is tested for real (issue 3). Needs root (apt-get, dockerd).
#
#   bash ci/docker-setup.sh         install docker.io if dockerd is missing, start dockerd in the
#                                   background (log: $MAKRX_DOCKER_STATE/dockerd.log), wait for it
#                                   (bounded), build the images (ci/images/build.sh)
#   bash ci/docker-setup.sh stop    remove the harness's containers and stop the dockerd started here
#
# An engine that already answers is used as it is (and never stopped by `stop`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${MAKRX_DOCKER_STATE:-/var/tmp/makrx-dockerd}"
wait_seconds="${MAKRX_DOCKERD_WAIT:-60}"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"

say() { echo "ci/docker-setup.sh: $*"; }
die() { echo "ci/docker-setup.sh: error: $*" >&2; exit 1; }
answers() { docker info >/dev/null 2>&1; }

stop() {
    if command -v docker >/dev/null && answers; then
        ids="$(docker ps -aq --filter label=org.makrx-contracts.run)"
        [ -z "$ids" ] || docker rm -f $ids >/dev/null
    fi
    [ -f "$pidfile" ] || { say "no dockerd started by this script"; return 0; }
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            say "dockerd ($pid) ignored SIGTERM for 20 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
    say "dockerd stopped (log kept at $log)"
}

if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi
[ "$#" -eq 0 ] || die "usage: $0 [stop]"

started=$SECONDS
mkdir -p "$state"
if command -v docker >/dev/null && answers; then
    say "a Docker engine already answers; using it"
else
    [ "$(id -u)" = 0 ] || die "starting dockerd needs root"
    if ! command -v dockerd >/dev/null; then
        say "installing docker.io (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >"$state/apt.log" 2>&1 || { tail -n 20 "$state/apt.log" >&2; die "apt-get update failed"; }
        apt-get install -y -qq --no-install-recommends docker.io >>"$state/apt.log" 2>&1 \
            || { tail -n 20 "$state/apt.log" >&2; die "apt-get install docker.io failed"; }
    fi
    say "starting dockerd (log $log)"
    nohup dockerd >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 $((wait_seconds * 5))); do
        answers && break
        kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -n 30 "$log" >&2; rm -f "$pidfile"; die "dockerd exited"; }
        sleep 0.2
    done
    answers || { tail -n 30 "$log" >&2; stop; die "dockerd did not answer within ${wait_seconds} s"; }
    say "dockerd answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
fi

# Debian's package lists are needed for apt-get download in the image build.
if ! apt-cache policy busybox-static 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt-get update -qq >"$state/apt.log" 2>&1 || die "apt-get update failed (see $state/apt.log)"
fi
bash "$here/images/build.sh"
say "ready in $((SECONDS - started)) s: images $(docker images --format '{{.Repository}}:{{.Tag}}' \
    --filter label=org.makrx-contracts.local-build=true | tr '\n' ' ')"
