#!/usr/bin/env bash
# The main job, the way users run it: build, pretrain the reference policy if there is none, then
# an asynchronous RL run with a learner and two rollout-worker processes (`rein launch`), the
# staleness report of that run, and a few lines of summary. Extra arguments go to `rein launch`
# (e.g. `scripts/demo.sh --set train.steps=500`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$(date +%s)
# Only the CLI: the demo needs no test kit, benchmark peer or build plugins.
swift build -c release --product rein
built=$(date +%s)
rein=.build/release/rein
config=${REIN_CONFIG:-configs/default.yaml}
reference=$($rein config show --config "$config" --key train.reference)
if [ ! -f "$reference" ]; then
    echo "demo: no reference policy at $reference; pretraining one (a 3,000-step schedule; it stops at its validation target)" >&2
    $rein pretrain --config "$config"
fi
run_dir=$($rein config show --config "$config" "$@" --key run_dir)
echo "demo: a learner and 2 rollout workers (rein launch --workers 2), asynchronous, run folder $run_dir" >&2
$rein launch --workers 2 --fresh --config "$config" "$@"
$rein report "$run_dir" --out "$run_dir/report" >/dev/null
end=$(date +%s)
echo
echo "demo: summary of $run_dir"
$rein summarize --brief "$run_dir" | tail -n +2
echo "demo: staleness report: $run_dir/report/report.html (with report.json and CSV beside it)"
echo "demo: $((end - start)) s in all, $((end - built)) s after the build"
