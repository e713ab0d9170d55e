#!/usr/bin/env bash
# The paper's comparison at Rein's scale: the same RL run with each KL form of configs/, then one
# summary table (accuracy before/after, exact KL to the reference, log-prob gap, entropy).
#   scripts/compare-kl.sh [STEPS] [BETA]      (defaults: 250 steps of 512 rollouts, β = 0.1; ~1.5 min per run on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-250}
beta=${2:-0.1}
forms=(no_kl k1_loss k2_loss k3_loss k1_reward k2_loss_lag4 k2_sgw_lag4 k3_w_lag4)
swift build -c release
rein=.build/release/rein
reference=$($rein config show --key train.reference)
[ -f "$reference" ] || $rein pretrain
runs=()
for form in "${forms[@]}"; do
    echo "== $form" >&2
    b=$beta
    [ "$form" = no_kl ] && b=0  # the no-KL baseline keeps β = 0
    $rein train --config "configs/$form.yaml" --fresh --set "train.steps=$steps" --set "train.eval_every=0" \
        --set "train.beta=$b" --set "run_dir=runs/compare/$form"
    runs+=("runs/compare/$form")
done
$rein summarize "${runs[@]}" | tee runs/compare/summary.md
