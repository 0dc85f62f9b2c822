#!/usr/bin/env bash
# scripts/bench-smoke.sh — runs every benchmark once, at small sizes, so that
# a benchmark that no longer builds or runs fails CI. The figures mean
# nothing; BENCHMARKS.md's commands measure.
#
#   scripts/bench-smoke.sh [GO TEST ARGS...]
#
# Each package runs with -run '^$' -bench . -benchtime 1x. The benchmarks
# whose sizes are flags get small ones (-args only reaches the package that
# defines them); the others are small at one iteration. Tests pick their
# broker as usual (STREAMRT_TEST_BROKERS, or kfake); BenchmarkCompare needs
# a real Kafka and skips without one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Packages whose benchmarks take size flags, with the smoke sizes.
declare -A sizes=(
    [github.com/streamrt/streamrt/runtime]="-streamrt.e2e-records=2000 -streamrt.tables-products=1000 -streamrt.tables-orders=2000 -streamrt.restore-keys=2000 -streamrt.latency-rate=500 -streamrt.latency-duration=1s -streamrt.server-swaps=1 -streamrt.server-swap-rate=500 -streamrt.rebuild-records=2000 -streamrt.server-deploys=1 -streamrt.tenants=5 -streamrt.tenants-idle=1s -streamrt.noisy-rate=200 -streamrt.noisy-duration=2s -streamrt.restart-keys=100"
    [github.com/streamrt/streamrt/runtime/internal/serve]="-streamrt.lookup-keys=20000 -streamrt.lookup-duration=200ms"
    [github.com/streamrt/streamrt/bench]="-streamrt.compare-records=2000 -streamrt.compare-keys=100 -streamrt.compare-warmup=0"
)

rc=0
bench() {
    # bench DIR ARGS...: one go test run of benchmarks in module DIR, with
    # ARGS the packages and flags, -args last.
    local dir="$1"
    shift
    echo "==> module ${dir}: go test -run '^\$' -bench . -benchtime 1x $*"
    (cd "$dir" && go test -run '^$' -bench . -benchtime 1x "$@") || rc=1
}

# Every module outside testdata/ and target/, and in each the packages
# with a benchmark.
mapfile -t modules < <(find . \( -name .git -o -name testdata -o -name target -o -name node_modules \) -prune \
    -o -name go.mod -type f -print | xargs -n1 dirname | LC_ALL=C sort)
for m in "${modules[@]}"; do
    plain=()
    while read -r pkg dir; do
        grep -qs '^func Benchmark' "$dir"/*_test.go || continue
        if [[ -n "${sizes[$pkg]:-}" ]]; then
            # shellcheck disable=SC2086 # the sizes are words
            bench "$m" "$@" "$pkg" -args ${sizes[$pkg]}
        else
            plain+=("$pkg")
        fi
    done < <(cd "$m" && go list -f '{{.ImportPath}} {{.Dir}}' ./...)
    if ((${#plain[@]} > 0)); then
        bench "$m" "$@" "${plain[@]}"
    fi
done
exit "$rc"
