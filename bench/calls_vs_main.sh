#!/usr/bin/env bash
# The adapter-call figures of this tree next to another commit's (default: main), built and
# measured in one run, alternating, three rounds each: the warm call and the fresh store
# (Runtime::open + one call) must each stay within 1.15x of the base's medians. Absolute
# figures drift 2x between runs on shared machines; only the ratio is compared.
#   bench/calls_vs_main.sh [BASE_REF]
# The base is built in a worktree with a target directory of its own
# (/var/tmp/tidemark-bench-base, seeded from this tree's): two trees sharing one target
# directory would share the build script's output, i.e. the embedded adapters.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BASE_REF=${1:-main}
BASE_SHA=$(git rev-parse --verify "$BASE_REF^{commit}")
HERE_TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BASE_TARGET=${BENCH_BASE_TARGET:-/var/tmp/tidemark-bench-base}
ROUNDS=${BENCH_ROUNDS:-3}
TREE=$(mktemp -d /var/tmp/tidemark-bench-tree.XXXXXX)
git worktree add --detach "$TREE/base" "$BASE_SHA" >/dev/null
trap 'git -C "$REPO" worktree remove --force "$TREE/base"; rm -rf "$TREE"' EXIT
if [[ ! -d $BASE_TARGET && -d $HERE_TARGET ]]; then cp -a "$HERE_TARGET" "$BASE_TARGET"; fi
# The build script's output names the tree it ran in; make the base's run in the base.
rm -rf "$BASE_TARGET"/release/build/tidemark-*

bench_binary() { # TREE TARGET: builds adapter_calls, prints its executable
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench -p tidemark --bench adapter_calls --no-run \
        --message-format=json 2>/dev/null) | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "adapter_calls" and m.get("executable"):
        print(m["executable"])'
}
echo "building the base ($BASE_REF = ${BASE_SHA:0:12}) and this tree..."
BASE_BIN=$(bench_binary "$TREE/base" "$BASE_TARGET")
HERE_BIN=$(bench_binary "$REPO" "$HERE_TARGET")

figures() { # BINARY: "WARM_US FRESH_US"
    "$1" --bench | python3 -c '
import re, sys
found = {}
for line in sys.stdin:
    m = re.search(r"([0-9.]+) (µs|ms)", line)
    if not m: continue
    us = float(m.group(1)) * (1000 if m.group(2) == "ms" else 1)
    if line.startswith("warm call"): found["warm"] = us
    if line.startswith("fresh:"): found["fresh"] = us
print(found["warm"], found["fresh"])'
}
base_warm=(); base_fresh=(); here_warm=(); here_fresh=()
for round in $(seq 1 "$ROUNDS"); do
    read -r w f < <(figures "$BASE_BIN"); base_warm+=("$w"); base_fresh+=("$f")
    read -r w f < <(figures "$HERE_BIN"); here_warm+=("$w"); here_fresh+=("$f")
    echo "round $round: base warm ${base_warm[-1]} µs fresh ${base_fresh[-1]} µs; this tree warm ${here_warm[-1]} µs fresh ${here_fresh[-1]} µs"
done
python3 - "${base_warm[*]}" "${base_fresh[*]}" "${here_warm[*]}" "${here_fresh[*]}" <<'PY'
import statistics, sys
bw, bf, hw, hf = ([float(x) for x in a.split()] for a in sys.argv[1:5])
ok = True
for what, base, here in (("warm call", bw, hw), ("fresh store + call", bf, hf)):
    b, h = statistics.median(base), statistics.median(here)
    r = h / b
    met = r <= 1.15
    ok &= met
    print(f"{what:<22} base {b:8.2f} µs   this tree {h:8.2f} µs   ratio {r:5.2f}x  (<= 1.15x: {'PASS' if met else 'FAIL'})")
sys.exit(0 if ok else 1)
PY
