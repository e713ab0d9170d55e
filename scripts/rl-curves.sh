#!/usr/bin/env bash
# RL learning curves over seeds (not a test): for every seed, pretrain π_ref with that seed (kept in
# OUT and reused when it exists), run `rein train` from it with the same seed, then print one table:
# held-out greedy accuracy per evaluation step and seed, the mean over seeds, and the gain over π_ref.
#
#   scripts/rl-curves.sh [CONFIG] [--task NAME] [--set key=value …]   # default configs/default.yaml
#   SEEDS="1 2 3 4" OUT=runs/curves-2000 scripts/rl-curves.sh --set train.steps=2000
#   TABLE_ONLY=1 scripts/rl-curves.sh   # only the table, from the run folders already in OUT
#
# Every run uses the configuration as given (plus `seed`, `pretrain.output`, `train.reference` and
# `run_dir`); arguments after CONFIG go to both `rein pretrain` and `rein train`. Run folders:
# OUT/seedN (started afresh), references OUT/reference-seedN.safetensors. Exits 1 if a run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/default.yaml
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    config=$1
    shift
fi
seeds=${SEEDS:-1 2 3}
out=${OUT:-runs/curves}
rein=.build/release/rein
[ -x "$rein" ] || swift build -c release --product rein
mkdir -p "$out"

# The greedy accuracy (a fraction) after each evaluation step of run folder $1, as "step value"
# lines: step 0 from eval-start.json, every metrics.jsonl line with an eval_greedy value, and the
# last step from eval.json (the end-of-run evaluation).
greedy() { { tr -d ' \n' <"$1"; echo; } | sed -n 's/.*"greedy":{[^}]*"accuracy":\([0-9.eE+-]*\).*/\1/p'; }
curve() {
    echo "0 $(greedy "$1/eval-start.json")"
    last=0
    while IFS= read -r line; do
        last=$(printf '%s' "$line" | sed -n 's/.*[{,]"step":\([0-9]*\).*/\1/p')
        value=$(printf '%s' "$line" | sed -n 's/.*"eval_greedy":\([0-9.eE+-]*\).*/\1/p')
        [ -z "$value" ] || echo "$last $value"
    done <"$1/metrics.jsonl"
    # The end-of-run evaluation, unless metrics.jsonl already has the last step's.
    tail -n 1 "$1/metrics.jsonl" | grep -q '"eval_greedy":[0-9]' || echo "$last $(greedy "$1/eval.json")"
}

for seed in $seeds; do
    [ -z "${TABLE_ONLY:-}" ] || break
    reference="$out/reference-seed$seed.safetensors"
    if [ ! -f "$reference" ]; then
        echo "rl-curves: pretraining π_ref, seed $seed → $reference" >&2
        "$rein" pretrain --config "$config" "$@" --set seed="$seed" --set pretrain.output="$reference" \
            >"$out/pretrain-seed$seed.log" 2>&1 || { tail -3 "$out/pretrain-seed$seed.log"; exit 1; }
    fi
    echo "rl-curves: rein train, seed $seed → $out/seed$seed" >&2
    start=$(date +%s)
    "$rein" train --fresh --config "$config" "$@" --set seed="$seed" --set train.reference="$reference" \
        --set run_dir="$out/seed$seed" >"$out/train-seed$seed.log" 2>&1 || { tail -3 "$out/train-seed$seed.log"; exit 1; }
    echo "rl-curves: seed $seed took $(($(date +%s) - start)) s (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
for seed in $seeds; do
    curve "$out/seed$seed" >"$out/curve-seed$seed.txt"
done

# One row per evaluation step: the accuracy of each seed, their mean, and the mean's gain over step 0.
set -- $seeds
awk -v nseeds=$# -v names="$*" '
    { file = FILENAME; sub(/.*curve-seed/, "", file); sub(/\.txt$/, "", file)
      acc[$1, file] = $2; if (!($1 in seen)) { seen[$1] = 1; steps[++n] = $1 } }
    END {
        split(names, seed, " ")
        printf "| step |"; for (s = 1; s <= nseeds; s++) printf " seed %s |", seed[s]; print " mean | gain |"
        printf "|---:|"; for (s = 1; s <= nseeds; s++) printf "---:|"; print "---:|---:|"
        for (i = 1; i <= n; i++) {
            t = steps[i]; sum = 0; count = 0; row = ""
            for (s = 1; s <= nseeds; s++) {
                if ((t, seed[s]) in acc) { v = 100 * acc[t, seed[s]]; sum += v; count++; row = row sprintf(" %.1f |", v) }
                else row = row " – |"
            }
            mean = count ? sum / count : 0
            if (i == 1) base = mean
            printf "| %d |%s %.1f | %+.1f |\n", t, row, mean, mean - base
        }
    }' $(for seed in $seeds; do echo "$out/curve-seed$seed.txt"; done)
