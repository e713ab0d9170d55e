#!/usr/bin/env bash
# Peak memory of a real multi-process run: `rein learner` and two `rein worker` processes on
# loopback, a fresh run folder, BATCHES batches (default 80) of the default config; prints each
# process's peak resident set (VmHWM, as the kernel reports it to the parent through wait4's
# ru_maxrss, read by GNU time) when it exits, against the goals of issue 14 (learner ≤ 128 MB,
# worker ≤ 64 MB). A benchmark, not a test: the figures depend on the allocator and the libraries.
#
#   scripts/bench/memory.sh [--batches 80] [--rein PATH] [--out DIR] [--heaptrack] [--breakdown] [-- ARGS]
#
# ARGS go to every process after the script's own settings (e.g. `--set model.d_model=128`).
# Without train.reference on disk the run starts from a random reference (same shapes, same cost).
# --heaptrack runs the learner and the first worker under heaptrack (its files go to DIR; read them
# with heaptrack_print); their peak then includes heaptrack's own memory. (heaptrack 1.4 with Swift
# 6 crashed in libunwind on this project's learner: prefer --breakdown.)
# --breakdown samples each process's /proc/PID/smaps (scripts/bench/smaps-breakdown.py) and prints
# where its memory was at its largest sample: each shared library, the executable, anonymous memory
# and the largest anonymous mappings (DIR/NAME.breakdown).
# Output: one line per process, `learner   VmHWM 123.4 MiB (goal ≤ 128 MiB)`, and DIR/*.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

batches=80 rein="" out="" heaptrack=0 breakdown=0 extra=()
while (($#)); do
    case "$1" in
        --batches) batches="${2:?}"; shift 2 ;;
        --rein) rein="${2:?}"; shift 2 ;;
        --out) out="${2:?}"; shift 2 ;;
        --heaptrack) heaptrack=1; shift ;;
        --breakdown) breakdown=1; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "memory: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ "$batches" =~ ^[0-9]+$ ]] || { echo "memory: --batches takes a number" >&2; exit 2; }
if [[ -z "$rein" ]]; then
    for candidate in .build/release/rein .build/debug/rein; do
        [[ -x "$candidate" ]] && { rein="$candidate"; break; }
    done
fi
[[ -n "$rein" && -x "$rein" ]] || { echo "memory: no rein executable (swift build -c release, or --rein)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "memory: needs GNU time (/usr/bin/time, Debian package time)" >&2; exit 1; }
out="${out:-$(mktemp -d -t rein-memory.XXXXXX)}"
mkdir -p "$out"
run="$out/run"
# A fresh run folder, and no log of an earlier run whose endpoint could be read before this one's.
rm -rf "$run" "$out"/learner.log "$out"/worker-[12].log "$out"/*.maxrss "$out"/*.breakdown

settings=(--config configs/default.yaml --set "run_dir=$run" --set "train.steps=$batches"
    --set train.eval_every=0 "${extra[@]}")
reference=$("$rein" config show "${settings[@]}" --key train.reference 2>/dev/null || true)
learner_reference=()
[[ -n "$reference" && -f "$reference" ]] || learner_reference=(--random-reference 1)

wrap() {  # NAME: the command prefix that measures (and maybe profiles) one process
    local prefix=(/usr/bin/time -f "%M" -o "$out/$1.maxrss")
    if ((heaptrack)) && [[ "$1" == learner || "$1" == worker-1 ]]; then
        prefix+=(heaptrack -o "$out/$1.heaptrack")
    fi
    echo "${prefix[@]}"
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; }
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT  # a failed run leaves no process waiting for peers

: > "$out/learner.log"  # exists before the loop below reads it (the learner opens it in the background)
# shellcheck disable=SC2046
$(wrap learner) "$rein" learner --bind 'tcp://127.0.0.1:*' "${learner_reference[@]}" "${settings[@]}" \
    > "$out/learner.log" 2>&1 &
learner=$!
pids+=("$learner")
endpoint=""
for _ in $(seq 1 600); do
    endpoint=$(sed -n 's/^learner listening on \(tcp:[^ ]*\).*/\1/p' "$out/learner.log" | head -1)
    [[ -n "$endpoint" ]] && break
    kill -0 "$learner" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$endpoint" ]] || { cat "$out/learner.log" >&2; echo "memory: the learner did not start" >&2; cleanup; exit 1; }

for w in 1 2; do
    # shellcheck disable=SC2046
    $(wrap "worker-$w") "$rein" worker --learner "$endpoint" --name "worker-$w" "${settings[@]}" \
        > "$out/worker-$w.log" 2>&1 &
    pids+=("$!")
done
if ((breakdown)); then
    python3 scripts/bench/smaps-breakdown.py "run_dir=$run" "$out" &
    pids+=("$!")
fi
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()  # all exited: nothing for the EXIT trap to stop
((status == 0)) || { tail -n 5 "$out"/*.log >&2; echo "memory: a process failed (logs in $out)" >&2; exit 1; }

trained=$(sed -n 's/.*"trained" *: *\([0-9]*\).*/\1/p' "$run/ledger.json" 2>/dev/null | head -1)
echo "memory: learner + 2 workers, ${batches} batches (${trained:-?} samples trained), $(uptime | sed 's/.*load/load/')"
for name in learner worker-1 worker-2; do
    kb=$(tail -1 "$out/$name.maxrss")
    goal=64
    [[ "$name" == learner ]] && goal=128
    awk -v n="$name" -v kb="$kb" -v g="$goal" \
        'BEGIN { printf "%-9s VmHWM %6.1f MiB (goal ≤ %d MiB)%s\n", n, kb / 1024, g, (kb / 1024 <= g ? "" : "  over") }'
done
if ((breakdown)); then cat "$out"/learner.breakdown "$out"/worker-1.breakdown 2>/dev/null || true; fi
echo "memory: logs and run folder in $out"
