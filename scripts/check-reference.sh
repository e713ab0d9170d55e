#!/usr/bin/env bash
# Robustness check of the reference recipe (not a test): pretrains π_ref for every seed under every
# matrix-kernel variant and prints one table row per run — steps taken, held-out greedy and sampled
# accuracy, seconds. Exits 1 if any run ends below MIN_ACCURACY (default 60) percent greedy.
#
#   scripts/check-reference.sh [CONFIG] [--set key=value …]   # default configs/default.yaml
#   SEEDS="1 2 3 4" scripts/check-reference.sh
#
# Variants (float rounding differs between them, so they show whether the recipe's outcome depends
# on it): OpenBLAS's own kernel choice with `threads` 2 and 1 (the thread count changes GEMM
# blocking), OpenBLAS pinned to its Haswell (AVX2) kernels and, on an AVX-512 CPU, to its SkylakeX
# kernels, every other matrix backend named in REIN_GEMM_BACKENDS (default "onednn"), and oneDNN
# with the AVX2 + FMA GELU build (REIN_KERNELS=avx2) on a CPU that has it.
# VARIANTS="label|ENV=… ENV=…|--set …;…" replaces the list.
# Checkpoints go to a temporary folder; runs/ is not touched. Times are wall-clock on this machine:
# they mean something only on an otherwise idle one.
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/default.yaml
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    config=$1
    shift
fi
seeds=${SEEDS:-1 2 3}
min=${MIN_ACCURACY:-60}
rein=.build/release/rein
[ -x "$rein" ] || swift build -c release --product rein

if [ -z "${VARIANTS:-}" ]; then
    # OpenBLAS by name: the default backend on x86-64 is oneDNN, so without REIN_GEMM these rows
    # would measure oneDNN under OpenBLAS's labels.
    openblas=REIN_GEMM=openblas
    VARIANTS="openblas auto, 2 threads|$openblas|--set threads=2;openblas auto, 1 thread|$openblas|--set threads=1"
    VARIANTS+=";openblas Haswell, 2 threads|$openblas OPENBLAS_CORETYPE=Haswell|--set threads=2"
    if grep -q avx512f /proc/cpuinfo 2>/dev/null; then
        VARIANTS+=";openblas SkylakeX, 2 threads|$openblas OPENBLAS_CORETYPE=SkylakeX|--set threads=2"
    fi
    for backend in ${REIN_GEMM_BACKENDS:-onednn}; do
        VARIANTS+=";$backend, 2 threads|REIN_GEMM=$backend|--set threads=2"
    done
    # The AVX2 + FMA build of the GELU kernels (opt-in), where the CPU has it.
    if grep -q avx2 /proc/cpuinfo 2>/dev/null; then
        VARIANTS+=";onednn AVX2 GELU, 2 threads|REIN_GEMM=onednn REIN_KERNELS=avx2|--set threads=2"
    fi
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf '%-28s %4s %6s %8s %8s %7s  %s\n' variant seed steps greedy sampled seconds result
failed=0
IFS=';' read -r -a variants <<<"$VARIANTS"
for variant in "${variants[@]}"; do
    IFS='|' read -r label environment sets <<<"$variant"
    for seed in $seeds; do
        log="$scratch/run.log"
        start=$(date +%s.%N)
        # shellcheck disable=SC2086 # $environment and $sets are word lists on purpose
        if ! env -u OPENBLAS_CORETYPE $environment "$rein" pretrain --config "$config" \
            --set seed="$seed" --set pretrain.output="$scratch/reference.safetensors" $sets "$@" \
            >"$log" 2>&1; then
            printf '%-28s %4s %6s %8s %8s %7s  %s\n' "$label" "$seed" - - - - "FAILED (see below)"
            tail -3 "$log"
            failed=1
            continue
        fi
        seconds=$(echo "$(date +%s.%N) - $start" | bc)
        line=$(grep 'reference written to' "$log")
        steps=$(sed -E 's/.* after ([0-9]+) steps.*/\1/' <<<"$line")
        greedy=$(sed -E 's/.*accuracy ([0-9.]+)% greedy.*/\1/' <<<"$line")
        sampled=$(sed -E 's/.* ([0-9.]+)% sampled.*/\1/' <<<"$line")
        result=ok
        if [ "$(echo "$greedy < $min" | bc)" = 1 ]; then
            result="below $min%"
            failed=1
        fi
        printf '%-28s %4s %6s %7s%% %7s%% %7.1f  %s\n' "$label" "$seed" "$steps" "$greedy" "$sampled" \
            "$seconds" "$result"
    done
done
exit $failed
