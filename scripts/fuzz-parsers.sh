#!/usr/bin/env bash
# libFuzzer over the parsers a peer's bytes reach first (Fuzz/WireFuzzTarget.swift): message
# header and frame checks, call/reply/hello envelopes, the binary decoder of call arguments, the
# call-target check and the generic-substitution lookup of the invocation decoder.
#
#   scripts/fuzz-parsers.sh [SECONDS]     (default 300; CI runs a few seconds)
#
# Builds ReinActors with `-sanitize=fuzzer` into .build-fuzz/ and links the target against its
# objects. The corpus grows in .build-fuzz/corpus (kept between runs); a crash leaves its input
# as .build-fuzz/crash-* and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
build=.build-fuzz
swift build --build-path "$build" --target ReinActors -Xswiftc -sanitize=fuzzer >&2
debug="$build/debug"
objects=()
for module in ReinActors ReinRandom ReinMetrics CoreMetrics ZeroMQ Logging; do
    objects+=("$debug/$module.build"/*.o)
done
swiftc -sanitize=fuzzer -parse-as-library -Onone -g \
    -I "$debug/Modules" -Xcc -fmodule-map-file=Sources/CZeroMQ/module.modulemap \
    Fuzz/WireFuzzTarget.swift "${objects[@]}" -lzmq -o "$build/wire-fuzz"
mkdir -p "$build/corpus"
echo "fuzz-parsers: $seconds s of libFuzzer on $(nproc) cores' worth of one process"
"$build/wire-fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/" -print_final_stats=1 "$build/corpus"
