#!/usr/bin/env bash
# A longer wire fuzz than the test suite's: hostile frames against a live `rein learner` (its
# actor-system ROUTER and sample PULL) and a live `rein worker` (its DEALER), while a real worker
# trains. Checks that both survive, that the learner counted every hostile frame, and reports the
# learner's and the flooded worker's RSS before and after.
#
#   scripts/fuzz-wire.sh [FRAMES]        (default 300000; REIN=path/to/rein to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-300000}
if [ -z "${REIN:-}" ]; then
    swift build -c release --product rein >&2
    REIN=.build/release/rein
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
overrides=(
    --set threads=1 --set model.context=16 --set model.d_model=16 --set model.layers=1 --set model.heads=2
    --set task.train_size=200 --set task.held_out_size=50 --set train.prompts_per_step=4
    --set train.group_size=4 --set train.eval_size=20 --set train.steps=1000000 --set train.max_staleness=0
    --set run_dir="$work/run"
)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
learner_port=$(port); samples_port=$(port); fake_port=$(port)

$REIN learner --bind "tcp://127.0.0.1:$learner_port" --samples-bind "tcp://127.0.0.1:$samples_port" \
    --random-reference 2 "${overrides[@]}" >"$work/learner.out" 2>"$work/learner.err" &
learner=$!
until grep -q "learner listening" "$work/learner.out"; do sleep 0.1; done
$REIN worker --learner "tcp://127.0.0.1:$learner_port" --name honest "${overrides[@]}" \
    >"$work/worker.out" 2>"$work/worker.err" &
honest=$!
sleep 2
learner_before=$(rss $learner)

echo "fuzz-wire: $frames hostile frames against the learner (ROUTER + sample PULL)"
$REIN fuzz-wire --learner "tcp://127.0.0.1:$learner_port" --samples "tcp://127.0.0.1:$samples_port" \
    --frames "$frames" | tee "$work/fuzz-learner.txt"
sleep 1
kill -0 $learner || { echo "FAIL: the learner died" >&2; exit 1; }
kill -0 $honest || { echo "FAIL: the honest worker died" >&2; exit 1; }
learner_after=$(rss $learner)

echo "fuzz-wire: $((frames / 3)) hostile frames against a worker (DEALER) from a fake learner"
$REIN fuzz-wire --serve-worker "tcp://127.0.0.1:$fake_port" --frames $((frames / 3)) >"$work/fuzz-worker.txt" &
fake=$!
# The victim's join call is never answered; the fake ends with an oversize frame, libzmq drops the
# connection, the victim finds its learner lost and exits, logging its counts.
$REIN worker --learner "tcp://127.0.0.1:$fake_port" --name victim --call-timeout 15 --heartbeat-timeout 30 "${overrides[@]}" \
    >"$work/victim.out" 2>"$work/victim.err" &
victim=$!
sleep 1
victim_before=$(rss $victim)
until grep -q "flood done" "$work/fuzz-worker.txt"; do
    kill -0 $fake 2>/dev/null || break
    sleep 0.1
done
kill -0 $victim || { echo "FAIL: the flooded worker died" >&2; tail -5 "$work/victim.err" >&2; exit 1; }
victim_after=$(rss $victim)
wait $fake
cat "$work/fuzz-worker.txt"
wait $victim 2>/dev/null || true
victim_summary=$(grep -o "wire: .*" "$work/victim.err" | tail -1)
victim_sent=$(grep -o "sent [0-9]*" "$work/fuzz-worker.txt" | awk '{print $2}')
victim_counted=$(echo "$victim_summary" | grep -o "wire: [0-9]*" | awk '{print $2}')

kill -TERM $learner
wait $learner || { echo "FAIL: the learner did not exit 0" >&2; tail -5 "$work/learner.err" >&2; exit 1; }
wait $honest || true
summary=$(grep -o "wire: .*" "$work/learner.err" | tail -1)
sent=$(grep -o "sent [0-9]*" "$work/fuzz-learner.txt" | awk '{print $2}')
counted=$(echo "$summary" | grep -o "wire: [0-9]*" | awk '{print $2}')
echo "learner $summary"
echo "flooded worker $victim_summary"
echo "learner RSS ${learner_before} KiB -> ${learner_after} KiB; flooded worker RSS ${victim_before} KiB -> ${victim_after} KiB"
echo "log lines about rejections: learner $(grep -c 'rejected message' "$work/learner.err"), worker $(grep -c 'rejected message' "$work/victim.err")"
if [ "${counted:-0}" -lt "$sent" ]; then
    echo "FAIL: the learner counted ${counted:-0} rejections for $sent hostile frames" >&2
    exit 1
fi
if [ "${victim_counted:-0}" -lt "$victim_sent" ]; then
    echo "FAIL: the flooded worker counted ${victim_counted:-0} rejections for $victim_sent hostile frames" >&2
    exit 1
fi
echo "fuzz-wire: OK (logs in $work)"
trap - EXIT
