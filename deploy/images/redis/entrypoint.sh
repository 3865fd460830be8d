#!/bin/sh
# `redis-server ARGS` (compose.yaml's command) runs as the official image runs it: no protected mode.
set -eu
if [ "${1:-}" = redis-server ]; then shift; exec redis-server --protected-mode no "$@"; fi
exec "$@"
