#!/usr/bin/env bash
# The Python worker (clients/python) trains beside a Swift worker: a venv with the client installed,
# its unit tests, then a real `rein learner` on loopback (a tiny random model, a short run), one
# Python worker and one `rein worker`. Passes only if the run folder shows a balanced ledger with
# nothing refused or lost, and batches of BOTH workers trained (workers.json).
#
#   scripts/python-worker-test.sh [REIN]
#
# REIN defaults to .build/debug/rein. Needs Debian's python3-zmq, python3-numpy, python3-venv and
# python3-setuptools (.ci/run installs them): the venv uses them (--system-site-packages), so
# nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
rein=${1:-.build/debug/rein}
python=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d /tmp/rein-python-worker.XXXXXX)
run="$work/run"
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== venv with clients/python ($work/venv)"
"$python" -m venv --system-site-packages "$work/venv"
cp -r clients/python "$work/src"   # setuptools builds in the source folder: not in the checkout
"$work/venv/bin/pip" install --quiet --no-build-isolation "$work/src"
(cd "$work/src" && "$work/venv/bin/python" -B -m unittest discover -s tests -t . 2>&1 | tail -3)

echo "== a learner, a Python worker and a Swift worker"
sets=(--set threads=1 --set model.context=16 --set model.d_model=16 --set model.layers=1
    --set model.heads=2 --set task.train_size=200 --set task.held_out_size=50
    --set train.steps=12 --set train.prompts_per_step=4 --set train.group_size=4
    --set train.eval_size=20 --set train.eval_every=0 --set train.lr=0.003 --set train.max_staleness=2
    --set train.temperature=0.9 --set train.top_k=12 --set train.checkpoint_every=0
    --set train.tracker_every=0 --set runtime.min_workers=2 --set runtime.pacing=bound
    --set run_dir="$run")
timeout 200 "$rein" learner --bind "tcp://127.0.0.1:*" --random-reference 2 "${sets[@]}" \
    >"$work/learner.out" 2>"$work/learner.err" &
learner=$!
for _ in $(seq 900); do grep -q "learner listening" "$work/learner.out" 2>/dev/null && break; sleep 0.1; done
endpoint=$(grep -o 'learner listening on [^ ]*' "$work/learner.out" | awk '{print $4}')
[ -n "$endpoint" ] || { cat "$work/learner.err"; echo "FAIL: the learner did not start"; exit 1; }
echo "learner at $endpoint"
timeout 200 "$work/venv/bin/rein-worker-py" --learner "$endpoint" --name python-worker \
    >"$work/python.out" 2>"$work/python.err" &
python_worker=$!
# runtime.min_workers=2: no batch goes out before both workers joined, and with pacing bound both
# get one at once, however fast either worker is.
timeout 200 "$rein" worker --learner "$endpoint" --name swift-worker "${sets[@]}" \
    >"$work/swift.out" 2>"$work/swift.err" &
swift_worker=$!
status=0
wait "$learner" || status=$?
wait "$python_worker" || status=$((status + $?))
wait "$swift_worker" || status=$((status + $?))
if [ "$status" -ne 0 ]; then
    tail -n 5 "$work/learner.err" "$work/python.err" "$work/swift.err"
    echo "FAIL: a process exited with an error (folder $work)"
    exit 1
fi
tail -1 "$work/python.out"
"$work/venv/bin/python" - "$run" <<'PY'
import json, sys
run = sys.argv[1]
ledger = json.load(open(run + "/ledger.json"))
workers = {w["name"]: w for w in json.load(open(run + "/workers.json"))["workers"]}
print("ledger.json:", json.dumps({k: v for k, v in ledger.items() if k != "schema_version"}, sort_keys=True))
for name, w in sorted(workers.items()):
    print("workers.json: %s trained %d batches (%d samples)" % (name, w["batches"], w["samples"]))
dropped = sum(ledger.get("dropped", {}).values())
problems = []
if ledger["produced"] != ledger["trained"] + dropped + ledger["in_flight"] + ledger["lost"]:
    problems.append("the ledger does not balance")
if ledger.get("refused"):
    problems.append("batches were refused: %s" % ledger["refused"])
if ledger["lost"] or ledger["in_flight"]:
    problems.append("samples lost or still in flight")
for name in ("python-worker", "swift-worker"):
    if workers.get(name, {}).get("batches", 0) < 1:
        problems.append("no batch of %s was trained" % name)
if sum(w["samples"] for w in workers.values()) != ledger["trained"]:
    problems.append("workers.json does not add up to the ledger's trained samples")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
echo "PASS: the Python worker trained beside the Swift worker (folder $work)"
