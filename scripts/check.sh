#!/usr/bin/env bash
# scripts/check.sh — the one entry point for streamrt's checks.
#
#   scripts/check.sh [GO TEST ARGS...]               all checks, then tests
#   scripts/check.sh --tests-only [GO TEST ARGS...]  only the tests
#
# For every Go module in the repo (each go.mod outside testdata/ and target/):
#   gofmt -l (must list nothing), go vet ./..., go build ./...,
#   go mod tidy -diff (go.mod/go.sum must already be tidy),
# then go test -race -count=1 [GO TEST ARGS...] ./... per module, and the
# allocation-counting tests (-run Alloc) once more without -race.
#
# The tree must stay clean: with CI=true (or STREAMRT_CHECK_CLEAN=1) the run
# fails if `git status --porcelain` is non-empty after the checks, or if the
# tests change it; otherwise these are only reported.
#
# Tests pick their broker from STREAMRT_TEST_BROKERS (empty: the embedded
# kfake fake). This script does not set it; callers do, e.g.
#   STREAMRT_TEST_BROKERS=127.0.0.1:PORT scripts/check.sh --tests-only
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

tests_only=0
if [[ "${1:-}" == "--tests-only" ]]; then
    tests_only=1
    shift
fi
strict_clean=0
if [[ "${CI:-}" == "true" || "${STREAMRT_CHECK_CLEAN:-}" == "1" ]]; then
    strict_clean=1
fi

failures=()
say() { echo "==> $*"; }
fail() {
    echo "FAIL: $*" >&2
    failures+=("$*")
}

command -v go >/dev/null 2>&1 || { echo "check.sh: error: go not found on PATH" >&2; exit 1; }

in_git=0
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    in_git=1
fi

# Go modules: every go.mod, skipping testdata/, target/ (Rust build output),
# vendor/, node_modules/ and .git/.
mapfile -t modules < <(
    find . \( -name .git -o -name testdata -o -name target -o -name vendor -o -name node_modules \) -prune \
        -o -name go.mod -type f -print |
        sed -e 's|/go.mod$||' -e 's|^\./||' -e 's|^\.$|.|' | LC_ALL=C sort
)
if ((${#modules[@]} == 0)); then
    echo "check.sh: error: no go.mod found under ${ROOT}" >&2
    exit 1
fi

# Go source files subject to gofmt: tracked + untracked-but-not-ignored, minus
# testdata/ and target/ trees.
go_files() {
    if ((in_git)); then
        git ls-files -z --cached --others --exclude-standard -- '*.go' |
            tr '\0' '\n' | grep -vE '(^|/)(testdata|target|vendor)/' || true
    else
        find . \( -name .git -o -name testdata -o -name target -o -name vendor -o -name node_modules \) -prune \
            -o -name '*.go' -type f -print | sed 's|^\./||'
    fi
}

git_status() {
    ((in_git)) || return 0
    git status --porcelain --untracked-files=all
}

# check_clean: after the checks, the tree must be clean (strict mode) — the
# checks change nothing, so this catches uncommitted or generated files.
check_clean() {
    local status
    status="$(git_status)"
    [[ -z "$status" ]] && return 0
    if ((strict_clean)); then
        echo "$status" >&2
        git --no-pager diff --stat >&2 || true
        fail "the work tree is dirty (files listed above; commit them, .gitignore them or delete them)"
    else
        echo "note: uncommitted changes in the work tree (this fails when CI=true):"
        echo "$status" | head -n 20
    fi
}

# check_tests_left_tree BEFORE: the tests must not change the work tree.
check_tests_left_tree() {
    local before="$1" after
    after="$(git_status)"
    [[ "$after" == "$before" ]] && return 0
    echo "work tree status before the tests:" >&2
    echo "${before:-  (clean)}" >&2
    echo "work tree status after the tests:" >&2
    echo "${after:-  (clean)}" >&2
    if ((strict_clean)); then
        fail "the tests changed the work tree (write scratch files under t.TempDir())"
    else
        echo "note: the work tree changed while the tests ran (this fails when CI=true)"
    fi
}

# has_packages DIR: the module in DIR has at least one Go package (go vet and
# go test fail on a module that has none, e.g. one that is still being set up).
# A module whose package list cannot be loaded counts as having packages, so
# that vet/build/test report the error.
has_packages() {
    local out
    out="$(cd "$1" && go list ./... 2>/dev/null)" || return 0
    [[ -n "$out" ]]
}

# in_dir DIR CMD...: run CMD in DIR.
in_dir() {
    (cd "$1" && shift && "$@")
}

# alloc_tests runs the allocation-counting tests without -race. Its
# package lines are prefixed "alloc: ", so that tallies of go test's "ok"
# lines count each package's test run once.
alloc_tests() {
    local rc=0
    go test -count=1 -run 'Alloc' ./... > >(sed -u 's/^/alloc: /') 2>&1 || rc=$?
    wait
    return "$rc"
}

timed() {
    # timed LABEL CMD...: run CMD, print its duration, record failure.
    local label="$1" t0 rc
    shift
    t0=$SECONDS
    rc=0
    "$@" || rc=$?
    if ((rc == 0)); then
        echo "    ok   ${label} ($((SECONDS - t0))s)"
    else
        fail "${label} (exit ${rc}, $((SECONDS - t0))s)"
    fi
    return 0
}

if ((tests_only == 0)); then
    say "modules: ${modules[*]}"

    say "gofmt -l"
    mapfile -t files < <(go_files)
    if ((${#files[@]} > 0)); then
        unformatted="$(gofmt -l "${files[@]}" 2>&1)" || true
        if [[ -n "$unformatted" ]]; then
            echo "$unformatted" >&2
            fail "gofmt: the files above need 'gofmt -w'"
        else
            echo "    ok   ${#files[@]} files formatted"
        fi
    else
        echo "    (no Go files)"
    fi

    for m in "${modules[@]}"; do
        say "module ${m}: vet, build, tidy"
        if ! has_packages "$m"; then
            echo "    skip vet/build: no Go packages in ${m}"
        else
            timed "go vet ./... in ${m}" in_dir "$m" go vet ./...
            timed "go build ./... in ${m}" in_dir "$m" go build ./...
        fi
        timed "go mod tidy in ${m} (go.mod/go.sum must be tidy; run 'go mod tidy' there)" \
            in_dir "$m" go mod tidy -diff
    done

    say "git status"
    check_clean
fi

if [[ "$(go env CGO_ENABLED)" != "1" ]]; then
    echo "check.sh: error: go test -race needs cgo (CGO_ENABLED=1 and a C compiler such as gcc)" >&2
    exit 1
fi

status_before_tests="$(git_status)"
broker="${STREAMRT_TEST_BROKERS:-}"
say "tests against ${broker:-embedded kfake} (STREAMRT_TEST_BROKERS=${broker})"
for m in "${modules[@]}"; do
    say "module ${m}: go test -race -count=1 $* ./..."
    if ! has_packages "$m"; then
        echo "    skip: no Go packages in ${m}"
        continue
    fi
    timed "go test in ${m}" in_dir "$m" go test -race -count=1 "$@" ./...
    # Allocation counts mean nothing under the race detector (sync.Pool
    # drops items at random there, and Pebble pools its iterators), so the
    # tests that count allocations skip themselves under -race and run
    # here again without it.
    timed "allocation tests in ${m}" in_dir "$m" alloc_tests
done

check_tests_left_tree "$status_before_tests"

if ((${#failures[@]} > 0)); then
    echo >&2
    echo "check.sh: ${#failures[@]} check(s) failed:" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
say "all checks passed"
