#!/bin/sh
# Entrypoint of the local redis:7 stand-in image (see ci/images/README.md), after the official one:
# `docker run IMAGE --requirepass x` or `IMAGE my.conf` start redis-server; the image's USER is
# `redis` (uid 999) and /data its working directory. Debian's redis-server keeps protected mode on
# by default (the official image builds it off); connections arrive through Docker's port mapping,
# not loopback, so it is turned off unless the arguments set it.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ]; then
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi

exec "$@"
