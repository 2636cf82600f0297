#!/usr/bin/env bash
# First the document itself: the server's own /v1/openapi.json must be a valid OpenAPI
# document (openapi-spec-validator; e.g. two operations sharing an operationId break client
# generators). Then generated bad (and good) input against every route of a real
# `tidemark serve`, driven by schemathesis from that document, every check on: no answer may be a
# 5xx, every answer must match the document, input the document calls valid must be
# accepted and input it calls invalid refused, and the server must still be alive at the end.
#
# Needs the release binary built (`cargo build --release`) and python3 with venv. schemathesis
# and openapi-spec-validator are installed once into a venv under /var/tmp and reused by later
# runs.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${TIDEMARK_BIN:-$TARGET/release/tidemark}"
VENV="${TIDEMARK_FUZZ_VENV:-/var/tmp/tidemark-fuzz-venv}"
SCHEMATHESIS_VERSION="4.32.5"
VALIDATOR_VERSION="0.9.0"
# Cases per operation; the whole step stays within a few minutes on two cores.
EXAMPLES="${TIDEMARK_FUZZ_EXAMPLES:-200}"
SEED="${TIDEMARK_FUZZ_SEED:-4711}"

[[ -x "$BIN" ]] || { echo "api_fuzz: no binary at $BIN (run cargo build --release)" >&2; exit 1; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" ||
    ! "$VENV/bin/pip" show openapi-spec-validator 2>/dev/null | grep -qx "Version: $VALIDATOR_VERSION"; then
    echo "api_fuzz: installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $VALIDATOR_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
fi

DATA="$(mktemp -d /tmp/tidemark-fuzz-XXXXXX)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

tm() { "$BIN" --data-dir "$DATA/lab" --output json "$@"; }
tm lab init >/dev/null
tm lab vm create app --host esx-a --disk C:=64MiB --lun D:=64MiB:physical --lun /data=64MiB:virtual >/dev/null
TOKEN="$(tm token create --role admin --name fuzz | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
# One recovery point, so generated requests can meet real ids as well as unknown ones.
tm snapshot app >/dev/null

"$BIN" --data-dir "$DATA/lab" serve --listen 127.0.0.1:0 2>"$DATA/serve.log" >/dev/null &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
    ADDR="$(sed -n 's|.*tidemark serving on http://||p' "$DATA/serve.log" | head -n 1)"
    [[ -n "$ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/serve.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "api_fuzz: the server did not start" >&2; cat "$DATA/serve.log" >&2; exit 1; }
# The served document, validated as a whole before anything is generated from it.
"$VENV/bin/python" - "http://$ADDR/v1/openapi.json" "$TOKEN" "$DATA/openapi.json" <<'PY'
import json, sys, urllib.request
url, token, out = sys.argv[1:]
request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(request, timeout=10) as answer:
    document = json.load(answer)
with open(out, "w") as f:
    json.dump(document, f)
PY
if ! "$VENV/bin/openapi-spec-validator" "$DATA/openapi.json"; then
    echo "api_fuzz: /v1/openapi.json is not a valid OpenAPI document" >&2
    exit 1
fi
echo "api_fuzz: fuzzing http://$ADDR ($EXAMPLES cases per operation, seed $SEED)"

# An adapter upload's body is valid only when it is a component of a supported contract, which
# no schema can say: random bytes the document allows are refused with 422 (documented), and
# the acceptance check is told so for that one operation. Every other check still applies.
cat >"$DATA/schemathesis.toml" <<'TOML'
[[operations]]
include-path = "/v1/adapters"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 413, 422, 429]
TOML

status=0
# Run from the scratch directory: schemathesis keeps its cache in the working directory.
# One worker: concurrent workers can trip CPython 3.11's ast.parse inside hypothesis
# ("AST constructor recursion depth mismatch"), an error of the tool, not of the server.
(cd "$DATA" && "$VENV/bin/schemathesis" run "http://$ADDR/v1/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$EXAMPLES" \
    --seed "$SEED" \
    --workers 1 \
    --request-timeout 10 \
    --no-color \
    --report-dir "$DATA/report") || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "api_fuzz: the server died during the run" >&2
    cat "$DATA/serve.log" >&2
    status=1
fi
if grep -q "panicked" "$DATA/serve.log"; then
    echo "api_fuzz: the server panicked" >&2
    grep -B2 -A5 "panicked" "$DATA/serve.log" >&2
    status=1
fi
exit "$status"
