#!/usr/bin/env bash
# scripts/fuzz.sh — runs every fuzz target of every module for a bounded
# time, so that the decoders of outside bytes (Wasm modules, ABI batches,
# group metadata, control records, range parameters, configuration) meet
# new inputs on every CI run, not only their seeds (which go test runs
# anyway).
#
#   scripts/fuzz.sh [FUZZTIME]        # per target; default 8s
#
# A failing input is written under the package's testdata/fuzz/ by go test:
# commit it with the fix, and it becomes a seed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZTIME="${1:-8s}"
rc=0
n=0
for mod in . abi sdk/go; do
    cd "$ROOT/$mod"
    # go test -list prints each package's matching tests, then "ok PKG".
    while read -r pkg names; do
        for name in $names; do
            n=$((n + 1))
            echo "== fuzz $pkg $name ($FUZZTIME)"
            if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
                echo "FAIL: fuzz $pkg $name"
                rc=1
            fi
        done
    done < <(go test -list '^Fuzz' ./... 2>/dev/null | awk '/^Fuzz/ {names = names " " $1} /^(ok|\?) / {if (names != "") print $2 names; names = ""}')
done
echo "fuzz.sh: $n targets, ${FUZZTIME} each"
((n > 0)) || { echo "fuzz.sh: no fuzz targets found"; exit 1; }
exit "$rc"
