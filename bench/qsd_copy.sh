#!/usr/bin/env bash
# A copy of a 1 GiB physical LUN on a real qemu-storage-daemon, read through the qsd-array
# adapter (NBD, pipelined) into the copy store, against `nbdcopy` of the same export to
# null: (the ceiling), alternating in one run, three rounds. Target: the copy's LUN read
# reaches >= 60% of the ceiling. Also `lab read` of the LUN through the adapter to
# /dev/null (the adapter's NBD path without the copy store), and `dd` of as many bytes to the
# store's file system (the write side's ceiling: on these VMs fresh buffered writes run at
# ~350 MiB/s, below what NBD reads). Prints MiB/s of each and the ratios of the medians.
# BENCH_NO_BUILD=1 uses the binary as built.
#   bench/qsd_copy.sh            (needs qemu-storage-daemon 10, nbdcopy from libnbd-bin)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
ROUNDS=${BENCH_ROUNDS:-3}
SIZE_MIB=${BENCH_LUN_MIB:-1024}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q
BIN=$CARGO_TARGET_DIR/release/tidemark
WASM=$CARGO_TARGET_DIR/wasm-adapters/wasm32-wasip2/release/qsd_array.wasm
WORK=$(mktemp -d /var/tmp/tidemark-bench-qsd.XXXXXX)
QSD_PID=
cleanup() { [[ -n $QSD_PID ]] && kill -KILL "$QSD_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
M1=$(free_port); M2=$(free_port); NBD=$(free_port)
mkdir -p "$WORK/images" "$WORK/data"
setsid qemu-storage-daemon \
    --chardev "socket,id=m0,host=127.0.0.1,port=$M1,server=on,wait=off" --monitor chardev=m0 \
    --chardev "socket,id=m1,host=127.0.0.1,port=$M2,server=on,wait=off" --monitor chardev=m1 \
    >/dev/null 2>&1 &
QSD_PID=$!
sleep 0.5
seconds() { python3 -c 'import time; print(time.monotonic())'; }
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/random.bin"
copies=(); reads=(); ceilings=(); disks=()
for round in $(seq "$ROUNDS"); do
    # Each round a fresh data directory (nothing to deduplicate against) and a fresh LUN.
    data="$WORK/data-$round"
    tm() { "$BIN" --data-dir "$data" --output json "$@"; }
    tm lab init >/dev/null
    tm adapter add "$WASM" --name qsd-array >/dev/null
    tm endpoint add qsd --adapter qsd-array --setting "qmp=127.0.0.1:$M1,$M2" \
        --setting "nbd=127.0.0.1:$NBD" --setting "image-dir=$WORK/images" \
        --grant "data-dir=$WORK/images" --grant "tcp=127.0.0.1:$M1" \
        --grant "tcp=127.0.0.1:$M2" --grant "tcp=127.0.0.1:$NBD" >/dev/null
    wwn=$(tm lab vm create app --host esx-a --disk C:=64MiB --lun "D:=${SIZE_MIB}MiB:physical" \
        --array qsd | python3 -c 'import json,sys; print([d for d in json.load(sys.stdin)["devices"] if d["mount_point"]=="D:"][0]["wwn"])')
    tm lab write app D: --offset 0 --file "$WORK/random.bin" >/dev/null
    t0=$(seconds); tm copy app >"$WORK/copy.json"; t1=$(seconds)
    copy=$(python3 -c "print($SIZE_MIB / ($t1 - $t0))")
    t0=$(seconds); tm lab read app D: --offset 0 --length "${SIZE_MIB}MiB" --out /dev/null >/dev/null; t1=$(seconds)
    read=$(python3 -c "print($SIZE_MIB / ($t1 - $t0))")
    t0=$(seconds); nbdcopy "nbd://127.0.0.1:$NBD/$wwn" null:; t1=$(seconds)
    ceiling=$(python3 -c "print($SIZE_MIB / ($t1 - $t0))")
    # The write side's ceiling: the same bytes written to the copy store's file system.
    t0=$(seconds); dd if=/dev/zero of="$WORK/dd.bin" bs=4M count=$((SIZE_MIB / 4)) 2>/dev/null; t1=$(seconds)
    rm -f "$WORK/dd.bin"
    disk=$(python3 -c "print($SIZE_MIB / ($t1 - $t0))")
    printf 'round %d: tidemark copy (snapshot + LUN into the copy store) %.0f MiB/s, lab read through the adapter %.0f MiB/s, nbdcopy to null: %.0f MiB/s, dd to the store'"'"'s disk %.0f MiB/s\n' \
        "$round" "$copy" "$read" "$ceiling" "$disk"
    copies+=("$copy"); reads+=("$read"); ceilings+=("$ceiling"); disks+=("$disk")
done
python3 - "${copies[*]}" "${reads[*]}" "${ceilings[*]}" "${disks[*]}" <<'PY'
import statistics, sys
copy, read, ceiling, disk = (statistics.median(float(x) for x in a.split()) for a in sys.argv[1:5])
ratio = copy / ceiling
print(f"median: copy {copy:.0f} MiB/s, adapter read {read:.0f} MiB/s ({read / ceiling:.2f} of the ceiling), "
      f"ceiling {ceiling:.0f} MiB/s; copy ratio {ratio:.2f} (target >= 0.60): {'PASS' if ratio >= 0.6 else 'MISS'}; "
      f"copy / dd to the store's disk {copy / disk:.2f} (dd {disk:.0f} MiB/s)")
PY
