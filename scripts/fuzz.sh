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
flaked=0
for mod in . abi sdk/go; do
    cd "$ROOT/$mod"
    # go test -list prints each package's matching tests, then "ok PKG".
    while read -r pkg names; do
        for name in $names; do
            n=$((n + 1))
            echo "== fuzz $pkg $name ($FUZZTIME)"
            corpus="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$name"
            before="$(ls "$corpus" 2>/dev/null | sort || true)"
            out="$(mktemp)"
            if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out"; then
                rm -f "$out"
                continue
            fi
            after="$(ls "$corpus" 2>/dev/null | sort || true)"
            # Go's fuzzing coordinator can fail a target with a bare
            # "context deadline exceeded" when -fuzztime ends while a worker
            # is mid-call on a loaded machine; it has found nothing and
            # written no input. Anything else (a new input under testdata,
            # a panic, another error) is a finding.
            if [[ "$before" == "$after" ]] && grep -q '^    context deadline exceeded$' "$out" &&
                ! grep -qE 'panic:|Failing input written|fuzz_test.go:[0-9]+:' "$out" &&
                go test -count=1 -run "^${name}\$" "$pkg" >/dev/null; then
                echo "fuzz.sh: $name stopped at its deadline with no finding (the seeds pass); not a failure"
                flaked=$((flaked + 1))
            else
                echo "FAIL: fuzz $pkg $name"
                rc=1
            fi
            rm -f "$out"
        done
    done < <(go test -list '^Fuzz' ./... 2>/dev/null | awk '/^Fuzz/ {names = names " " $1} /^(ok|\?) / {if (names != "") print $2 names; names = ""}')
done
echo "fuzz.sh: $n targets, ${FUZZTIME} each, $flaked stopped at the deadline without a finding"
((n > 0)) || { echo "fuzz.sh: no fuzz targets found"; exit 1; }
exit "$rc"
