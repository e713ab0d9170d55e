#!/usr/bin/env bash
# Chaos run: one `rein learner` and many rollout workers (real RolloutWorkerActors on the real
# protocol, packed several to a helper process by the hidden `rein bench scale-workers`, with the
# stand-in sampler of `rein bench scale`: a canned batch the learner's audit accepts after
# --sample-ms), while the script
#   - kills 10% of the workers (whole helper processes, SIGKILL) every 10 s and restarts them,
#   - cuts one worker "host" off for 20 s (a network namespace whose veth link goes down) and
#     heals it — only as root with `ip netns`; otherwise it prints a SKIPPED line for that part,
#   - kills the learner once with SIGKILL, at least 10 s after the heal, and starts it again (it
#     resumes from its checkpoint; the workers reconnect by themselves),
# then ends the run with SIGTERM (the learner drains, checkpoints and writes its files) and checks,
# from the run folder's JSON files only (ledger.json, metrics.jsonl, status.json):
#   the ledger balances with nothing in flight; no batch index is trained twice; no trained batch
#   is older than max_staleness; samples were counted lost (never silently) when workers died;
#   the learner ended the run (status finished, exit 0); and, from the cut-off host's own report,
#   that its workers got work again from the same learner between the heal and its restart (the
#   learner and they declared each other dead: they rejoin as new nodes). Exit status 1 if any
#   check fails.
#
#   scripts/chaos.sh [--short] [--workers 256] [--per-process 8] [--seconds 180] [--rein PATH] [--keep]
#
# --short: 16 workers, 2 per process, 65 s (CI). Logs and the run folder: a temporary directory,
# kept with --keep or on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

workers=256 per_process=8 seconds=180 rein="" keep=0 sample_ms=1000
while (($#)); do
    case "$1" in
        --short) workers=16 per_process=2 seconds=65; shift ;;
        --workers) workers="${2:?}"; shift 2 ;;
        --per-process) per_process="${2:?}"; shift 2 ;;
        --seconds) seconds="${2:?}"; shift 2 ;;
        --sample-ms) sample_ms="${2:?}"; shift 2 ;;
        --rein) rein="${2:?}"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "chaos: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ "$workers" =~ ^[0-9]+$ && "$per_process" =~ ^[0-9]+$ && "$seconds" =~ ^[0-9]+$ && "$workers" -ge 2 ]] \
    || { echo "chaos: --workers (≥ 2), --per-process and --seconds take whole numbers" >&2; exit 2; }
((seconds >= 60)) || { echo "chaos: --seconds must be ≥ 60 (kills, a partition and a learner restart)" >&2; exit 2; }
if [[ -z "$rein" ]]; then
    for candidate in .build/release/rein .build/debug/rein; do
        [[ -x "$candidate" ]] && { rein="$PWD/$candidate"; break; }
    done
fi
[[ -n "$rein" && -x "$rein" ]] || { echo "chaos: no rein executable (swift build, or --rein)" >&2; exit 1; }

work=$(mktemp -d /tmp/rein-chaos.XXXXXX)
run="$work/run"
port=$((20000 + RANDOM % 20000))
processes=$(((workers + per_process - 1) / per_process))
max_staleness=$((2 * workers))
sets=(--set threads=1 --set model.context=16 --set model.d_model=16 --set model.layers=1
    --set model.heads=2 --set task.train_size=2000 --set task.held_out_size=50
    --set train.steps=100000000 --set train.prompts_per_step=4 --set train.group_size=4
    --set train.eval_size=20 --set train.eval_every=0 --set train.tracker_every=0
    --set train.max_staleness="$max_staleness" --set train.checkpoint_every=20
    --set runtime.pacing=bound --set runtime.max_workers="$workers" --set run_dir="$run")
learner_cmd=("$rein" learner --bind "tcp://0.0.0.0:$port" --random-reference 2 "${sets[@]}")
helper_pids=()
learner_pid=""
netns="" veth_host=""

cleanup() {
    local code=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${helper_pids[@]}" $learner_pid; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n "$netns" ]]; then
        for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$netns" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if ((keep)) || ((code != 0)); then echo "chaos: logs and run folder in $work" >&2; else rm -rf "$work"; fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The partition needs a worker host of its own: a namespace joined to this one by a veth pair.
partition_skip=""
if [[ "$(id -u)" != 0 ]]; then
    partition_skip="not running as root"
elif ! command -v ip >/dev/null 2>&1; then
    partition_skip="no ip command (iproute2)"
elif ! ip netns add "rein-chaos-$$" 2>/dev/null; then
    partition_skip="ip netns add is not permitted here"
else
    netns="rein-chaos-$$"
    net=$((RANDOM % 200 + 20))
    veth_host="rcx$$"
    ip link add "$veth_host" type veth peer name "rcy$$"
    ip link set "rcy$$" netns "$netns"
    ip addr add "10.203.$net.1/24" dev "$veth_host"
    ip link set "$veth_host" up
    ip -n "$netns" addr add "10.203.$net.2/24" dev "rcy$$"
    ip -n "$netns" link set "rcy$$" up
    ip -n "$netns" link set lo up
fi

start_learner() {
    "${learner_cmd[@]}" >>"$work/learner.out" 2>>"$work/learner.err" &
    learner_pid=$!
    local waited=0
    until [[ $(grep -c "learner listening" "$work/learner.out" 2>/dev/null || true) -ge "$1" ]]; do
        kill -0 "$learner_pid" 2>/dev/null || { echo "chaos: the learner died at start" >&2; tail -5 "$work/learner.err" >&2; exit 1; }
        sleep 0.2
        waited=$((waited + 1))
        ((waited < 600)) || { echo "chaos: the learner did not listen within 120 s" >&2; exit 1; }
    done
}

# Helper i holds workers i*per_process …; helper 0 lives in the partitioned host when there is one.
start_helper() {
    local i=$1 first=$(($1 * per_process)) count=$per_process
    ((first + count > workers)) && count=$((workers - first))
    local learner="tcp://127.0.0.1:$port" host=() report=()
    if ((i == 0)) && [[ -n "$netns" ]]; then
        learner="tcp://10.203.$net.1:$port" host=(ip netns exec "$netns") report=(--report "$work/host-cut-off.json")
    fi
    REIN_LOG_LEVEL=warning "${host[@]}" "$rein" bench scale-workers --learner "$learner" --count "$count" \
        --first "$first" --sample-ms "$sample_ms" --reconnect-timeout 120 "${report[@]}" "${sets[@]}" \
        >>"$work/helper-$i.log" 2>&1 &
    helper_pids[i]=$!
}

echo "chaos: $workers workers in $processes helper processes ($per_process each), ${seconds} s, stand-in sampling ${sample_ms} ms, max_staleness $max_staleness; work dir $work"
start_learner 1
for ((i = 0; i < processes; i++)); do start_helper "$i"; done

kill_each=$(((processes + 5) / 10))   # 10% of the workers, in whole helper processes
((kill_each >= 1)) || kill_each=1
killed_workers=0 kill_rounds=0 restarts=0 partitioned=0 learner_killed=0
started=$(date +%s)
# The learner is killed 10 s after the heal at the earliest, so that the cut-off workers must rejoin
# the learner they lost (not a restarted one) to get work in between.
partition_at=15 learner_kill_at=$((seconds / 2 + 5))
((learner_kill_at >= partition_at + 30)) || learner_kill_at=$((partition_at + 30))
healed_at=0 learner_killed_at=0
next_kill=10
while true; do
    now=$(($(date +%s) - started))
    ((now >= seconds)) && break
    if ((now >= next_kill)); then
        next_kill=$((next_kill + 10))
        # Distinct helpers, never helper 0 (the partitioned host's) unless it is the only one.
        if ((processes > 1)); then
            victims=($(shuf -i "1-$((processes - 1))" -n "$kill_each"))
        else
            victims=(0)
        fi
        for v in "${victims[@]}"; do
            kill -KILL "${helper_pids[v]}" 2>/dev/null && {
                wait "${helper_pids[v]}" 2>/dev/null || true
                c=$per_process
                ((v * per_process + c > workers)) && c=$((workers - v * per_process))
                killed_workers=$((killed_workers + c))
                start_helper "$v"
                restarts=$((restarts + 1))
            }
        done
        kill_rounds=$((kill_rounds + 1))
        echo "chaos: t=${now}s killed and restarted helper(s) ${victims[*]}; $killed_workers workers killed so far"
    fi
    if ((partitioned == 0 && now >= partition_at)); then
        if [[ -n "$netns" ]]; then
            echo "chaos: t=${now}s partition: worker host $netns ($per_process workers) cut off for 20 s"
            ip link set "$veth_host" down
            partitioned=1
            ( sleep 20; ip link set "$veth_host" up; date +%s.%N > "$work/healed-at"; echo "chaos: partition healed" ) &
        else
            echo "SKIPPED: partition (needs root and ip netns: $partition_skip)"
            partitioned=2
        fi
    fi
    if ((learner_killed == 0 && now >= learner_kill_at)); then
        echo "chaos: t=${now}s SIGKILL the learner (pid $learner_pid); starting it again on the same run folder"
        learner_killed_at=$(date +%s.%N)
        kill -KILL "$learner_pid"
        wait "$learner_pid" 2>/dev/null || true
        learner_killed=1
        start_learner 2
    fi
    sleep 1
done
[[ -n "$netns" ]] && ip link set "$veth_host" up

echo "chaos: t=${seconds}s SIGTERM the learner: drain, checkpoint, ledger"
kill -TERM "$learner_pid"
status=0
wait "$learner_pid" || status=$?
# Workers end when the learner tells them the run is over; those still looking for it (they lost
# it shortly before the end) are stopped after 10 s.
for ((t = 0; t < 100; t++)); do
    alive=0
    for pid in "${helper_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
done
for pid in "${helper_pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done

[[ -f "$work/healed-at" ]] && healed_at=$(cat "$work/healed-at")
python3 - "$run" "$status" "$max_staleness" "$killed_workers" "$kill_rounds" "$partitioned" "$learner_killed" \
    "$healed_at" "$learner_killed_at" "$work/host-cut-off.json" <<'EOF'
import json, os, sys
run = sys.argv[1]
status, max_staleness, killed, rounds, partitioned, learner_killed = map(int, sys.argv[2:8])
healed_at, learner_killed_at, cut_off_report = float(sys.argv[8]), float(sys.argv[9]), sys.argv[10]
failures = []
def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
ledger = json.load(open(f"{run}/ledger.json"))
metrics = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
status_file = json.load(open(f"{run}/status.json"))
dropped = sum(ledger.get("dropped", {}).values())
refused = sum(ledger.get("refused", {}).values())
print(f"chaos summary: {killed} workers killed in {rounds} rounds, partition "
      f"{'done' if partitioned == 1 else 'SKIPPED'}, learner SIGKILLed {learner_killed}x; "
      f"ledger produced {ledger['produced']}, trained {ledger['trained']}, dropped {dropped}, "
      f"lost {ledger['lost']}, in flight {ledger['in_flight']}, refused {refused}, "
      f"leases expired {ledger.get('leases_expired', 0)}; {len(metrics)} batches")
check(status == 0, f"the learner ended the run cleanly (exit status {status})")
check(status_file.get("state") == "finished", f"status.json says finished ({status_file.get('state')})")
check(ledger["produced"] == ledger["trained"] + dropped + ledger["in_flight"] + ledger["lost"],
      "the ledger balances: produced = trained + dropped + in flight + lost")
check(ledger["in_flight"] == 0, "nothing is in flight at the end")
steps = [m["step"] for m in metrics]
check(len(steps) == len(set(steps)), "no batch index is trained (or dropped) twice")
check(steps == list(range(1, len(steps) + 1)), "batch indices are 1…n without gaps")
trained = [m for m in metrics if m.get("learner")]
largest = max((m["lag_max"] for m in trained), default=0)
check(largest <= max_staleness, f"no trained batch is older than max_staleness {max_staleness} (largest lag {largest})")
check(len(trained) > 0 and ledger["trained"] > 0, f"batches were trained ({len(trained)})")
# A worker holds a batch nearly all the time (sampling takes sample_ms, an order comes at once with
# max_staleness 2N and pacing bound): at least half of the killed ones must show up as lost batches.
batch = 4 * 4  # train.prompts_per_step × train.group_size
check(ledger["lost"] % batch == 0 and ledger["lost"] // batch >= killed // 2,
      f"workers killed with batches in hand were counted: {ledger['lost'] // batch} batches lost "
      f"for {killed} workers killed")
if partitioned == 1:
    # Helper 0 (never killed) lived on the cut-off host; it writes its report when the run ends.
    times = json.load(open(cut_off_report))["orderTimes"] if os.path.exists(cut_off_report) else []
    back = [t for t in times if healed_at < t < learner_killed_at]
    check(healed_at > 0 and len(back) > 0,
          f"the cut-off host's workers got work from the same learner after the heal, before its "
          f"restart ({len(back)} orders in those {learner_killed_at - healed_at:.0f} s)")
sys.exit(1 if failures else 0)
EOF
