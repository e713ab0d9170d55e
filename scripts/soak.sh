#!/usr/bin/env bash
# Soak test: `rein launch` with N workers for M minutes on a small model; samples the RSS and the
# open file descriptors of the learner and of every worker (from /proc) and the learner's
# throughput (its status.json: samples trained, policy version) every few seconds, writes a CSV and
# prints a summary: RSS growth per process (mean of the first minute vs mean of the last minute),
# the least-squares RSS trend after the first minute (MB per minute: a leak shows as a steady
# positive trend, allocator noise as a trend near 0), and fd count min/max. Ends the run with
# SIGTERM (drain); exits with rein launch's status, which is non-zero if the learner failed or its
# ledger did not balance.
#
#   scripts/soak.sh [--minutes 10] [--workers 8] [--interval 5] [--rein PATH] [--out DIR] [-- ARGS]
#
# ARGS go to `rein launch` after the soak's own settings (e.g. `--set model.d_model=128`). Crashed
# workers are restarted (`--max-restarts 1000`); the summary counts the restarts per worker.
#
# Output: DIR/soak.csv (time_s,process,pid,rss_kb,fds,trained,version), DIR/summary.txt,
# DIR/launch.log, DIR/run/ (the run folder). Default DIR: runs/soak-<date>.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 workers=8 interval=5 rein="" out="" extra=()
while (($#)); do
    case "$1" in
        --minutes) minutes="${2:?}"; shift 2 ;;
        --workers) workers="${2:?}"; shift 2 ;;
        --interval) interval="${2:?}"; shift 2 ;;
        --rein) rein="${2:?}"; shift 2 ;;
        --out) out="${2:?}"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ "$minutes" =~ ^[0-9]+(\.[0-9]+)?$ && "$workers" =~ ^[0-9]+$ && "$interval" =~ ^[0-9]+(\.[0-9]+)?$ ]] \
    || { echo "soak: --minutes, --workers and --interval take numbers" >&2; exit 2; }
if [[ -z "$rein" ]]; then
    for candidate in .build/release/rein .build/debug/rein; do
        [[ -x "$candidate" ]] && { rein="$candidate"; break; }
    done
fi
[[ -n "$rein" && -x "$rein" ]] || { echo "soak: no rein executable (swift build -c release, or --rein)" >&2; exit 1; }
out="${out:-runs/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
csv="$out/soak.csv"
run="$out/run"
duration=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')

# A small model that keeps 8 workers and the learner busy on a few cores; steps never run out.
"$rein" launch --workers "$workers" --max-restarts 1000 --random-reference 3 \
    --set threads=1 --set model.context=16 --set model.d_model=64 --set model.layers=2 --set model.heads=2 \
    --set task.train_size=2000 --set task.held_out_size=50 --set train.steps=100000000 \
    --set train.prompts_per_step=4 --set train.group_size=4 --set train.eval_size=20 \
    --set train.max_staleness=4 --set train.kl.estimator=k2 --set train.kl.ratio=token \
    --set "run_dir=$run" "${extra[@]}" > "$out/launch.log" 2>&1 &
launch=$!
stop_launch() { kill -TERM "$launch" 2>/dev/null || true; }
trap 'stop_launch; wait "$launch" 2>/dev/null; exit 130' INT TERM

# The learner and the workers: the launcher's children, named by their command line.
children() {
    local stat pid ppid cmdline name
    for stat in /proc/[0-9]*/stat; do
        { read -r pid _ _ ppid _ < "$stat"; } 2>/dev/null || continue
        [[ "$ppid" == "$launch" ]] || continue
        cmdline="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || continue
        if [[ "$cmdline" == *" learner "* ]]; then
            name=learner
        elif [[ "$cmdline" =~ --name\ (worker-[0-9]+) ]]; then
            name="${BASH_REMATCH[1]}"
        else
            continue
        fi
        echo "$name $pid"
    done
}

json_number() { { sed -n "s/.*\"$1\" *: *\([0-9][0-9]*\).*/\1/p" "$2" 2>/dev/null || true; } | head -1; }

echo "soak: $workers workers for $minutes min, sampling every ${interval}s -> $csv" >&2
echo "time_s,process,pid,rss_kb,fds,trained,version" > "$csv"
start=$SECONDS
while ((SECONDS - start < duration)); do
    kill -0 "$launch" 2>/dev/null || { echo "soak: rein launch exited early:" >&2; tail -20 "$out/launch.log" >&2; exit 1; }
    now=$((SECONDS - start))
    trained="$(json_number trained "$run/status.json")"
    version="$(json_number version "$run/status.json")"
    while read -r name pid; do
        rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" || continue
        fds="$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
        [[ -n "$rss" ]] && echo "$now,$name,$pid,$rss,$fds,${trained:-0},${version:-0}" >> "$csv"
    done < <(children)
    sleep "$interval"
done

echo "soak: stopping (SIGTERM: the learner drains and writes its run folder)" >&2
stop_launch
status=0
wait "$launch" || status=$?
trap - INT TERM

# Summary: per process, RSS growth (first minute vs last minute), fd min/max; throughput.
{
    echo "soak: $workers workers, $minutes min, rein launch exit status $status"
    awk -F, -v total="$duration" '
        NR == 1 { next }
        {
            t = $1; p = $2
            if (!(p in seen)) { seen[p] = 1; order[++n] = p; fdmin[p] = $5; fdmax[p] = $5 }
            if ($5 < fdmin[p]) fdmin[p] = $5
            if ($5 > fdmax[p]) fdmax[p] = $5
            if (t < 60) { first[p] += $4; nfirst[p]++ }
            if (t >= total - 60) { last[p] += $4; nlast[p]++ }
            # Least-squares trend of RSS after the first (warm-up) minute.
            if (t >= 60) { k[p]++; st[p] += t; sy[p] += $4; stt[p] += t * t; sty[p] += t * $4 }
            if (!(p in pids) || index(pids[p], " " $3 " ") == 0) pids[p] = pids[p] " " $3 " "
            if (t < 60 && $6 > 0 && (tf == "" || t < tf)) { tf = t; nf = $6 }
            if (t > tl) { tl = t; nl = $6 }
        }
        END {
            printf "%-10s %12s %12s %8s %13s %7s %7s %s\n", "process", "rss_first_MB", "rss_last_MB", "growth", "trend_MB/min", "fd_min", "fd_max", "restarts"
            worst = 0
            for (i = 1; i <= n; i++) {
                p = order[i]
                a = nfirst[p] ? first[p] / nfirst[p] : 0; b = nlast[p] ? last[p] / nlast[p] : 0
                g = a > 0 ? 100 * (b - a) / a : 0
                if (nlast[p] && g > worst) worst = g
                restarts = split(pids[p], x, "  ") - 1
                d = k[p] * stt[p] - st[p] * st[p]
                trend = (k[p] > 2 && d > 0) ? (k[p] * sty[p] - st[p] * sy[p]) / d * 60 / 1024 : 0
                if (!nlast[p]) { printf "%-10s %12.1f %12s %8s %13s %7d %7d %d\n", p, a / 1024, "gone", "-", "-", fdmin[p], fdmax[p], restarts; continue }
                printf "%-10s %12.1f %12.1f %7.1f%% %13.3f %7d %7d %d\n", p, a / 1024, b / 1024, g, trend, fdmin[p], fdmax[p], restarts
            }
            printf "largest RSS growth: %.1f%% (goal < 5%%)\n", worst
            if (tl > tf) printf "throughput: %.0f samples trained per second (from %d s to %d s: %d -> %d samples)\n", (nl - nf) / (tl - tf), tf, tl, nf, nl
        }' "$csv"
    if [[ -f "$run/ledger.json" ]]; then
        echo "ledger: $(tr -d '\n ' < "$run/ledger.json")"
    fi
    tail -3 "$out/launch.log" | grep -E "\[learner\] (run folder|learner busy)" || true
} | tee "$out/summary.txt"
exit "$status"
