#!/usr/bin/env bash
# Admin API benchmark: wrk on GET /v1/jobs/{id} and GET /v1/vms (64 connections, 10 s), and
# 100 snapshot jobs submitted concurrently over the API against the same 100 run by the
# embedded engine (one process, all at once through `cargo bench --bench fanout` style is not
# comparable; here: the same binary, 100 parallel CLI processes vs 100 parallel POSTs).
# Needs wrk (apt-get install wrk) and python3. Prints its figures; targets: >= 20,000 req/s
# and p99 <= 10 ms; API total within 2x of embedded.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TM=${BENCH_TIDEMARK_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/tidemark}
[[ -x $TM ]] || (cd "$REPO" && cargo build --release -p tidemark)
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
WORK=${BENCH_WORK_DIR:-/var/tmp/tidemark-api-bench}
PORT=${BENCH_PORT:-7499}
rm -rf "$WORK"; mkdir -p "$WORK"
export TIDEMARK_DATA_DIR=$WORK/data
"$TM" lab init >/dev/null
for i in $(seq 1 100); do
    "$TM" lab vm create "vm$i" --host esx-a --disk C:=64MiB --lun D:=64MiB:physical >/dev/null
done
"$TM" snapshot vm1 >/dev/null
JOB=$("$TM" --output json jobs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
TOKEN=$("$TM" --output json token create --role operator | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$TM" serve --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 1
for path in "/v1/jobs/$JOB" "/v1/vms"; do
    echo "== wrk -t2 -c64 -d10s GET $path"
    wrk -t2 -c64 -d10s --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" \
        | grep -E "Requests/sec|  50%|  99%|Non-2xx|Socket errors" || true
done

echo "== 100 snapshot jobs submitted concurrently over the API (vm1..vm100)"
python3 - "$PORT" "$TOKEN" <<'PY'
import json, sys, time, threading, urllib.request
port, token = sys.argv[1], sys.argv[2]
def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
start = time.time()
ids = [None] * 100
def submit(i):
    ids[i] = call("POST", "/v1/jobs", {"kind": "snapshot", "vm": f"vm{i+1}"})["job"]
threads = [threading.Thread(target=submit, args=(i,)) for i in range(100)]
[t.start() for t in threads]; [t.join() for t in threads]
states = {}
while True:
    states = {i: call("GET", f"/v1/jobs/{i}")["state"] for i in ids}
    if all(s not in ("running", "compensating") for s in states.values()):
        break
    time.sleep(0.05)
elapsed = time.time() - start
ok = sum(1 for s in states.values() if s == "succeeded")
print(f"api: {ok}/100 succeeded in {elapsed:.2f} s")
PY
kill $SERVER; wait $SERVER 2>/dev/null || true; trap - EXIT

echo "== the same 100 snapshots, embedded: 100 CLI processes at once on the same data dir"
start=$(date +%s.%N)
for i in $(seq 1 100); do "$TM" --output json snapshot "vm$i" >"$WORK/embedded-$i.json" 2>&1 & done
wait
end=$(date +%s.%N)
ok=$(grep -l '"state": "succeeded"' "$WORK"/embedded-*.json | wc -l)
python3 -c "print(f'embedded: {$ok}/100 succeeded in {$end - $start:.2f} s')"
