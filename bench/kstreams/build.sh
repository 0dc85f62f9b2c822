#!/usr/bin/env bash
# bench/kstreams/build.sh — build the Kafka Streams baseline of the side-by-side
# benchmark (bench/compare_test.go) into one runnable jar, and print its path last.
#
#   bench/kstreams/build.sh [MAVEN ARGS...]    e.g. -o to build offline
#
# The jar is built with `mvn package` from pom.xml and src/ and cached by their
# content hash in ${XDG_CACHE_HOME:-~/.cache}/streamrt/kstreams-bench/HASH/, so
# that later calls print the cached path at once; Maven's build directory is a
# temporary one, and the source tree stays clean. The first build needs Java 17+,
# Maven and Maven Central (about 100 MB of jars into ~/.m2, a minute or so).
#
# Environment:
#   STREAMRT_KSTREAMS_CACHE   cache folder (default ${XDG_CACHE_HOME:-~/.cache}/streamrt/kstreams-bench)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${STREAMRT_KSTREAMS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/streamrt/kstreams-bench}"
JAR_NAME="streamrt-kstreams-bench.jar"

die() { echo "build.sh: error: $*" >&2; exit 1; }

hash="$(cd "$HERE" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
jar="${CACHE}/${hash}/${JAR_NAME}"
if [[ -f "$jar" ]]; then
    echo "$jar"
    exit 0
fi

command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka Streams 4.1 needs Java 17 or newer)"
command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed to build the Kafka Streams jar from Maven Central)"
mkdir -p "$CACHE"
work="$(mktemp -d "${CACHE}/build.XXXXXX")"
# shellcheck disable=SC2064
trap "rm -rf '$work'" EXIT
echo "build.sh: building ${JAR_NAME} with Maven (sources ${hash})..." >&2
if ! (cd "$HERE" && mvn -B -q "$@" package -Dbench.buildDir="${work}/target") >"${work}/mvn.log" 2>&1; then
    cat "${work}/mvn.log" >&2
    die "mvn package failed in ${HERE} (see output above)"
fi
[[ -f "${work}/target/${JAR_NAME}" ]] || die "mvn finished but ${work}/target/${JAR_NAME} is missing"
mkdir -p "${CACHE}/${hash}"
# A rename within one file system: a concurrent build or reader sees the whole jar or none.
mv "${work}/target/${JAR_NAME}" "${jar}.tmp.$$"
mv "${jar}.tmp.$$" "$jar"
echo "build.sh: built ${jar}" >&2
echo "$jar"
