#!/usr/bin/env bash
# Kill the learner of a running multi-process run with SIGKILL, start it again on the same endpoint
# and run folder, and show that it resumes: versions before and after, the workers reconnecting by
# themselves (they are never restarted), the final ledger and the largest lag trained.
#
#   scripts/learner-kill-resume.sh [REIN] [STEPS] [KILL_AFTER_SECONDS]
#
# REIN defaults to .build/debug/rein (built by `swift build`); a tiny random model keeps it short.
set -euo pipefail
cd "$(dirname "$0")/.."
rein=${1:-.build/debug/rein}
steps=${2:-600}
kill_after=${3:-5}
work=$(mktemp -d /tmp/rein-kill-resume.XXXXXX)
run="$work/run"
port=$((20000 + RANDOM % 20000))
endpoint="tcp://127.0.0.1:$port"
sets=(--set threads=1 --set model.context=16 --set model.d_model=16 --set model.layers=1
    --set model.heads=2 --set task.train_size=200 --set task.held_out_size=50
    --set train.steps="$steps" --set train.prompts_per_step=4 --set train.group_size=4
    --set train.eval_size=20 --set train.lr=0.003 --set train.max_staleness=2
    --set train.kl.estimator=k2 --set train.kl.ratio=token --set train.checkpoint_every=10
    --set run_dir="$run")
learner=("$rein" learner --bind "$endpoint" --random-reference 2 "${sets[@]}")
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "\$ ${learner[*]}   # learner 1, folder $run"
"${learner[@]}" >"$work/learner1.out" 2>"$work/learner1.err" &
learner1=$!
until grep -q "learner listening" "$work/learner1.out" 2>/dev/null; do sleep 0.1; done
workers=()
for i in 0 1; do
    echo "\$ $rein worker --learner $endpoint --name worker-$i ...   # same --set overrides"
    "$rein" worker --learner "$endpoint" --name "worker-$i" "${sets[@]}" >"$work/worker-$i.out" 2>"$work/worker-$i.err" &
    workers+=($!)
done
sleep "$kill_after"
echo "\$ kill -9 $learner1   # the learner, mid-run"
kill -9 "$learner1"
wait "$learner1" 2>/dev/null || true
echo "last checkpoint of learner 1: $(grep -o 'checkpoint at batch [0-9]*, policy version [0-9]*' "$work/learner1.err" | tail -1)"
sleep 2
echo "\$ ${learner[*]}   # learner 2: same command"
"${learner[@]}" >"$work/learner2.out" 2>"$work/learner2.err" &
learner2=$!
wait "$learner2"
echo "learner 2 exit status $?; its output:"
sed 's/^/  /' "$work/learner2.out"
for i in 0 1; do
    status=0
    wait "${workers[$i]}" || status=$?
    echo "worker-$i (pid ${workers[$i]}, never restarted) exit status $status:"
    grep -E "lost the learner|connected to the learner|run finished" "$work/worker-$i.err" \
        | sed -E 's/^[^ ]+ [a-z]+ rein.worker: \[ReinRuntime\] /  /' | cut -c1-160
done
resumed=$(grep -o 'resuming from a checkpoint at batch [0-9]*' "$work/learner2.out" | grep -o '[0-9]*$')
python3 - "$run" "$resumed" <<'EOF'
import json, sys
run, resumed = sys.argv[1], int(sys.argv[2])
metrics = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
for m in metrics[resumed - 2:resumed + 2]:
    print(f"  step {m['step']}: version {m['version']}, lag {m['lagMax']}"
          + ("   <- last batch in the checkpoint" if m['step'] == resumed else "")
          + ("   <- first batch trained after the restart" if m['step'] == resumed + 1 else ""))
trained = [m for m in metrics if m.get("learner")]
print(f"metrics.jsonl: {len(metrics)} batches, steps 1..{metrics[-1]['step']}, versions "
      f"{metrics[0]['version']}..{metrics[-1]['version']}, "
      f"version +1 at every trained batch: {all(b['version'] == a['version'] + (1 if b.get('learner') else 0) for a, b in zip(metrics, metrics[1:]))}, "
      f"largest lag trained {max(m['lagMax'] for m in trained)} (max_staleness 2)")
ledger = json.load(open(f"{run}/ledger.json"))
print("ledger.json:", json.dumps(ledger, sort_keys=True))
EOF
