#!/usr/bin/env bash
# Replays every fuzz target's committed corpus once, as a regression check that needs neither
# nightly nor cargo-fuzz: the targets build on the stable toolchain (libFuzzer is linked by
# libfuzzer-sys, without coverage instrumentation) and libFuzzer runs each input of
# regressions/<target> exactly once (-runs=0). The corpora are the minimized ones the long
# campaigns kept (docs/FUZZING.md), findings included, so an input that once failed fails
# again if its bug comes back. Every target must have one.
set -euo pipefail
cd "$(dirname "$0")"

# Debug assertions and overflow checks on, as in the campaigns' builds.
cargo build --quiet --bins

failed=0
for source in fuzz_targets/*.rs; do
    target=$(basename "$source" .rs)
    corpus=regressions/$target
    if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
        echo "fuzz replay: $target has no corpus in fuzz/$corpus" >&2
        failed=1
        continue
    fi
    count=$(ls "$corpus" | wc -l)
    if target/debug/"$target" -runs=0 "$corpus" >"target/replay-$target.log" 2>&1; then
        echo "fuzz replay: $target: $count inputs, no failure"
    else
        echo "fuzz replay: $target FAILED; its log:" >&2
        tail -n 40 "target/replay-$target.log" >&2
        failed=1
    fi
done
exit "$failed"
