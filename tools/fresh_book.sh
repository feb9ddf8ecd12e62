#!/usr/bin/env bash
# The book as a new user builds it: a fresh clone, a fresh environment, an empty
# artifacts folder, then `make book PROFILE=...`.
#
#   tools/fresh_book.sh [PROFILE] [REV]      (defaults: cpu, HEAD)
#
# FRESH_DIR sets the scratch folder (default: a new one under /tmp); LLMFS_DATA
# defaults to ../shared/data beside the checkout when that exists. At the end it
# prints each chapter's time, the load average, the claims that did not hold and
# the exit status of `make book` (1 when a claim failed, 2 when a chapter failed).
set -uo pipefail

profile=${1:-cpu}
rev=${2:-HEAD}
src=$(cd "$(dirname "$0")/.." && pwd)
scratch=${FRESH_DIR:-$(mktemp -d /tmp/llmfs-fresh-XXXXXX)}
if [ -z "${LLMFS_DATA:-}" ] && [ -d "$src/../shared/data" ]; then
    LLMFS_DATA=$(cd "$src/../shared/data" && pwd)
fi
export LLMFS_DATA
export LLMFS_HOME="$scratch/artifacts"  # empty: every long run starts from nothing
mkdir -p "$scratch"
if [ -e "$LLMFS_HOME" ] && [ -n "$(ls -A "$LLMFS_HOME")" ]; then
    echo "fresh_book: $LLMFS_HOME is not empty; choose another FRESH_DIR" >&2
    exit 2
fi

git clone -q "$src" "$scratch/repo" && git -C "$scratch/repo" checkout -q "$rev" || {
    echo "fresh_book: cannot clone $src at $rev" >&2; exit 2; }
cd "$scratch/repo" || exit 2
echo "fresh_book: $(git log -1 --format='%h %s' | cut -c1-80)"
echo "fresh_book: profile $profile, clone in $scratch/repo, artifacts in $LLMFS_HOME"
echo "fresh_book: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s)
make book PROFILE="$profile" > "$scratch/book.log" 2>&1
status=$?
end=$(date +%s)

echo "fresh_book: make book exited $status after $(( end - start )) s" \
     "(log: $scratch/book.log)"
echo "fresh_book: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
timings="_build/$profile/timings.json"
if [ -f "$timings" ]; then
    python3 - "$timings" <<'PY'
import json, sys
times = json.load(open(sys.argv[1]))
for name, sec in times.items():
    print(f"  {name:32s} {sec:8.1f} s")
print(f"  {'chapters in all':32s} {sum(times.values()):8.1f} s")
PY
fi
grep -E "^book: (claim did not hold|warning|error)" "$scratch/book.log" || \
    echo "fresh_book: every claim held"
[ -f "_build/$profile/book.pdf" ] && echo "fresh_book: PDF at $scratch/repo/_build/$profile/book.pdf"
exit $status
