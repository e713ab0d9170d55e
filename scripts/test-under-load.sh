#!/usr/bin/env bash
# Runs `make test` while two busy-loop processes occupy both cores, to show that heartbeats,
# call timeouts and the transport do not depend on idle CPUs (issue 13, "timing that survives
# load"). The busy loops are stopped when the script ends, however it ends.
#
#   scripts/test-under-load.sh [MAKE ARGS…]       (e.g. TIMED_TESTS=… to narrow the run)
set -euo pipefail
cd "$(dirname "$0")/.."
busy=()
stop() { for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop EXIT
for _ in 1 2; do
    bash -c 'while :; do :; done' &
    busy+=($!)
done
echo "test-under-load: busy loops ${busy[*]} on $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
status=0
make test "$@" || status=$?
echo "test-under-load: make test exited $status after $(($(date +%s) - start)) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
