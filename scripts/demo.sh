#!/usr/bin/env bash
# The main job on a small default: build, pretrain the reference policy if there is none, run a
# short RL fine-tuning with k2-as-loss, and say where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release
rein=.build/release/rein
config=${REIN_CONFIG:-configs/default.yaml}
reference=$($rein config show --config "$config" --key train.reference)
if [ ! -f "$reference" ]; then
    echo "demo: no reference policy at $reference; pretraining one (at most 3,000 steps; it stops at its validation target)" >&2
    $rein pretrain --config "$config"
fi
$rein train --config "$config" "$@"
run_dir=$($rein config show --config "$config" --key run_dir)
echo "demo: results in $run_dir (metrics.jsonl, eval.json, ledger.json, checkpoint/)"
