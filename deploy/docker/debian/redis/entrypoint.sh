#!/bin/sh
# redis-server as the official image runs it: on every address (the services are other
# containers) and without protected mode, which would refuse them (no password is set).
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --bind 0.0.0.0 --protected-mode no "$@"
fi
exec "$@"
