#!/usr/bin/env bash
# Copy-store benchmark: Tidemark against restic and borg, same data, same run.
#
# Usage:
#   bench/copies.sh                         # all tools, 1 GiB device, 3 rounds (~8 GiB scratch)
#   BENCH_SIZE_MIB=64 BENCH_ROUNDS=1 bench/copies.sh   # quick run (even number of MiB)
#   BENCH_TOOLS="restic borg" bench/copies.sh
#
# Environment:
#   BENCH_SIZE_MIB      device size in MiB, even (default 1024)
#   BENCH_ROUNDS        rounds of the whole sequence (default 3); figures are medians
#   BENCH_TOOLS         any of: tidemark restic borg (default all three)
#   BENCH_WORK_DIR      scratch directory, deleted at start (default /var/tmp/tidemark-bench)
#   BENCH_SEED          data seed (default 1)
#   BENCH_DROP_CACHES   1 = `sync; echo 3 > /proc/sys/vm/drop_caches` before every measured
#                       operation, 0 = only `sync`; default: 1 if that file is writable
#   BENCH_BORG_COMPRESSION  borg --compression (default zstd,3: restic's "auto" is zstd at
#                       its default level, which corresponds to zstd level 3)
#   BENCH_TIDEMARK_BIN  use this binary instead of `cargo build --release -p tidemark`
#                       (built into ${CARGO_TARGET_DIR:-<repo>/target})
#
# Data (bench/copies_data.py, deterministic from the seed): a device image of alternating
# 1 MiB random and 1 MiB text-like blocks (~3.5x compressible with zstd). Two change sets:
# "scattered" = 1% of the device as random 4 KiB-aligned 4 KiB blocks (2621 at 1 GiB),
# "clustered" = ten 1 MiB runs at random 1 MiB-aligned offsets (~1%). New bytes are random.
#
# Rounds: the whole sequence below runs BENCH_ROUNDS times, each round on fresh repositories,
# a fresh lab and a fresh copy of the same image; the tools' order rotates from round to round
# so none is always first after a cache drop. The table, the ratios and PASS/FAIL use the
# median of the rounds (each round's figures are in the JSON).
#
# Sequence, identical for every tool (stages interleaved: each stage runs every tool):
#   full            first copy of the base image
#   incr-scattered  scattered change set applied to the device, incremental copy
#   incr-clustered  clustered change set applied on top, incremental copy
#                   (each incremental is measured against the copy just before it)
#   restore         restore the newest point (base + both change sets), then compare
#                   every byte with the expected image (not timed; a mismatch aborts)
#   verify          read and check all stored data: restic check --read-data,
#                   borg check --verify-data, tidemark verify --all
# restic/borg back up the file <work>/r<round>/src/disk.img; the change sets are written in place
# into that file. Tidemark's device is a lab VM disk (/data of VM "bench"); the image and the
# change sets are written with `tidemark lab write` (not timed). Tidemark's copy includes
# taking the snapshot; its restore creates VM "bench-r" on esx-b and is read back with
# `tidemark lab read`.
#
# Measures: /usr/bin/time -f '%e %U %S %M' around each operation: wall s, CPU s (user+sys),
# peak RSS (largest process). Stored bytes: growth of the repository directory
# (`du -sb`): <work>/r<round>/{restic-repo,borg-repo,tidemark/copies}.
# Page cache: the same for every tool. Before every measured operation the script runs
# `sync` and, when allowed (root, writable /proc/sys/vm/drop_caches), drops the page cache,
# so every operation starts cold. Writes left dirty by an operation are not in its time.
# restic: repository version 2, default compression (auto), RESTIC_CACHE_DIR in the work dir.
# borg: repokey encryption, default chunker, --compression $BENCH_BORG_COMPRESSION,
# BORG_BASE_DIR in the work dir. Tidemark: defaults.
#
# Targets (issue 10), each printed PASS/FAIL: full copy >= 3x as fast as restic; scattered
# incremental <= 5% of restic's time and <= 20% of its stored bytes; restore >= 2x as fast as
# restic; Tidemark's peak RSS <= 256 MiB (the largest of any round).
#
# Output: the table and the target checks on stdout; JSON results in
# bench/out/copies-<UTC time>.json (and bench/out/copies-latest.json). Logs of every
# operation in <work>/logs/r<round>. Exit 1 if a tool fails, a restore differs, or a target fails.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
WORK=${BENCH_WORK_DIR:-/var/tmp/tidemark-bench}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
ROUNDS=${BENCH_ROUNDS:-3}
TOOLS=${BENCH_TOOLS:-tidemark restic borg}
SEED=${BENCH_SEED:-1}
BORG_COMPRESSION=${BENCH_BORG_COMPRESSION:-zstd,3}
OUT_DIR=$BENCH/out

die() { echo "copies.sh: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# ---------------------------------------------------------------------------- checks

[[ $SIZE_MIB =~ ^[0-9]+$ && $SIZE_MIB -ge 2 && $((SIZE_MIB % 2)) -eq 0 ]] ||
    die "BENCH_SIZE_MIB must be an even number >= 2 (got '$SIZE_MIB')"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 ]] || die "BENCH_ROUNDS must be a whole number >= 1 (got '$ROUNDS')"
for t in $TOOLS; do
    case $t in tidemark | restic | borg) ;; *) die "unknown tool '$t' in BENCH_TOOLS" ;; esac
done

missing=()
[[ -x /usr/bin/time ]] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
has_tool restic && ! command -v restic >/dev/null && missing+=(restic)
has_tool borg && ! command -v borg >/dev/null && missing+=(borgbackup)
if ((${#missing[@]})); then
    die "missing: ${missing[*]}
install with:  apt-get update && apt-get install -y ${missing[*]}
(or leave a tool out: BENCH_TOOLS=\"tidemark restic\" ...)"
fi
if has_tool tidemark && [[ -z ${BENCH_TIDEMARK_BIN:-} ]] && ! command -v cargo >/dev/null; then
    die "cargo not found (needed to build tidemark); or set BENCH_TIDEMARK_BIN"
fi

if [[ -n ${BENCH_DROP_CACHES:-} ]]; then
    DROP=$BENCH_DROP_CACHES
elif [[ -w /proc/sys/vm/drop_caches ]] && (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    DROP=1
else
    DROP=0
fi

# ---------------------------------------------------------------------------- setup

case $WORK in /|/tmp|/var/tmp|"$HOME"|"$REPO"*) die "refusing to use '$WORK' as work dir" ;; esac
note "work dir $WORK (cleaned), device ${SIZE_MIB} MiB, $ROUNDS round(s), tools: $TOOLS, drop caches: $DROP"
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$OUT_DIR"
RESULTS=$WORK/results.tsv
: >"$RESULTS"

if has_tool tidemark; then
    if [[ -n ${BENCH_TIDEMARK_BIN:-} ]]; then
        src_bin=$BENCH_TIDEMARK_BIN
    else
        note "cargo build --release -p tidemark"
        (cd "$REPO" && cargo build --release -p tidemark) >&2
        src_bin=${CARGO_TARGET_DIR:-$REPO/target}/release/tidemark
    fi
    [[ -x $src_bin ]] || die "no tidemark binary at $src_bin"
    # A private copy, so a concurrent build cannot swap the binary during the run.
    mkdir -p "$WORK/bin"
    cp "$src_bin" "$WORK/bin/tidemark"
    TM=$WORK/bin/tidemark
fi

export RESTIC_PASSWORD=bench-password
export BORG_PASSPHRASE=bench-password
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=YES BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=YES

note "generating data (seed $SEED)"
python3 "$BENCH/copies_data.py" base "$WORK/base.img" --size-mib "$SIZE_MIB" --seed "$SEED"
python3 "$BENCH/copies_data.py" changes "$WORK/changes-scattered" --kind scattered \
    --size-mib "$SIZE_MIB" --seed "$SEED" >&2
python3 "$BENCH/copies_data.py" changes "$WORK/changes-clustered" --kind clustered \
    --size-mib "$SIZE_MIB" --seed "$SEED" >&2

# ---------------------------------------------------------------------------- measuring

dir_bytes() { if [[ -d $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }

settle() {
    sync
    if [[ $DROP == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# measure TOOL OP STORE_DIR CMD...  — runs CMD (stdout/stderr to logs), appends a result
# row; aborts with the log's tail if CMD fails.
measure() {
    local tool=$1 op=$2 store=$3
    shift 3
    local log=$LOGS/$tool-$op
    settle
    local before after rc=0
    before=$(dir_bytes "$store")
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)   # other work on the machine skews the figures
    echo "# load before: $(cat /proc/loadavg)" >"$log.err"
    note "$tool $op: $*"
    /usr/bin/time -f '%e %U %S %M' -o "$log.time" "$@" >"$log.out" 2>>"$log.err" || rc=$?
    after=$(dir_bytes "$store")
    read -r wall user sys rss <"$log.time" || true
    if [[ $rc -ne 0 ]]; then
        echo "---- $tool $op failed (exit $rc): $*" >&2
        tail -n 30 "$log.out" "$log.err" >&2
        die "$tool $op failed; logs in $log.{out,err}"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$op" "$wall" "$user" "$sys" "$rss" \
        "$((after - before))" "$rc" "$load" "$ROUND" >>"$RESULTS"
    note "r$ROUND $tool $op: ${wall}s wall, $user+$sys s CPU, $((rss / 1024)) MiB peak, stored +$((after - before)) bytes"
}

# Tidemark's device writes (setup, not timed): one `lab write` per extent.
tm() { "$TM" "$@"; }
tm_apply() {
    local dir=$1 off len name
    while IFS=$'\t' read -r off len name; do
        tm lab write bench /data --offset "$off" --file "$dir/$name" >/dev/null
    done <"$dir/extents.tsv"
}

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

check_same() { # check_same TOOL FILE
    [[ -f $2 ]] || die "$1 restore: no restored file at $2"
    cmp "$R/src/disk.img" "$2" >&2 ||
        die "$1 RESTORE DIFFERS from the source image ($2)"
    note "$1 restore: identical to the source image"
    rm -f "$2"
}

# ---------------------------------------------------------------------------- stages

# Each stage runs every tool, in the round's order ($ORDER).
copy_stage() { # copy_stage OP
    local op=$1 t
    for t in $ORDER; do
        case $t in
        tidemark)
            measure tidemark "$op" "$TIDEMARK_DATA_DIR/copies" "$TM" --output json copy bench
            TM_POINT=$(json_field "$LOGS/tidemark-$op.out" recovery_point)
            ;;
        restic)
            measure restic "$op" "$RESTIC_REPOSITORY" env -C "$R/src" restic backup disk.img
            ;;
        borg)
            measure borg "$op" "$BORG_REPO_DIR" env -C "$R/src" \
                borg create --compression "$BORG_COMPRESSION" "$BORG_REPO_DIR::$op" disk.img
            ;;
        esac
    done
}

apply_changes() { # apply_changes KIND
    local dir=$WORK/changes-$1
    note "applying the $1 change set (not timed)"
    python3 "$BENCH/copies_data.py" apply "$R/src/disk.img" "$dir"
    if has_tool tidemark; then tm_apply "$dir"; fi
}

restore_stage() { # restore the newest point, compare every byte
    local t
    for t in $ORDER; do
        case $t in
        tidemark)
            measure tidemark restore "$TIDEMARK_DATA_DIR/copies" \
                "$TM" --output json restore bench "$TM_POINT" --host esx-b --as bench-r
            tm lab read bench-r /data --offset 0 --length "${SIZE_MIB}MiB" \
                --out "$R/restore/tidemark.img" >/dev/null
            check_same tidemark "$R/restore/tidemark.img"
            ;;
        restic)
            mkdir -p "$R/restore/restic"
            measure restic restore "$RESTIC_REPOSITORY" restic restore latest --target "$R/restore/restic"
            check_same restic "$(find "$R/restore/restic" -name disk.img -type f | head -n1)"
            ;;
        borg)
            mkdir -p "$R/restore/borg"
            measure borg restore "$BORG_REPO_DIR" env -C "$R/restore/borg" \
                borg extract "$BORG_REPO_DIR::incr-clustered"
            check_same borg "$R/restore/borg/disk.img"
            ;;
        esac
    done
}

verify_stage() { # read and check all stored data
    local t
    for t in $ORDER; do
        case $t in
        tidemark) measure tidemark verify "$TIDEMARK_DATA_DIR/copies" "$TM" --output json verify --all ;;
        restic) measure restic verify "$RESTIC_REPOSITORY" restic check --read-data ;;
        borg) measure borg verify "$BORG_REPO_DIR" borg check --verify-data "$BORG_REPO_DIR" ;;
        esac
    done
}

# The tools in $TOOLS, rotated left by N places.
rotated() { # rotated N
    local -a t=($TOOLS)
    local n=${#t[@]} i out=()
    for ((i = 0; i < n; i++)); do out+=("${t[$(((i + $1) % n))]}"); done
    echo "${out[*]}"
}

run_round() { # run_round N
    ROUND=$1
    R=$WORK/r$ROUND
    LOGS=$WORK/logs/r$ROUND
    ORDER=$(rotated $((ROUND - 1)))
    note "round $ROUND of $ROUNDS (order: $ORDER)"
    rm -rf "$R"
    mkdir -p "$R"/{src,restore} "$LOGS"
    cp "$WORK/base.img" "$R/src/disk.img" # restic/borg source, changed in place later
    export TIDEMARK_DATA_DIR=$R/tidemark
    export RESTIC_REPOSITORY=$R/restic-repo RESTIC_CACHE_DIR=$R/restic-cache
    BORG_REPO_DIR=$R/borg-repo
    export BORG_BASE_DIR=$R/borg-home

    # setup (not timed)
    if has_tool tidemark; then
        tm lab init >"$LOGS/tidemark-setup.log"
        tm lab vm create bench --host esx-a --disk "/data=${SIZE_MIB}MiB" >>"$LOGS/tidemark-setup.log"
        tm lab write bench /data --offset 0 --file "$WORK/base.img" >>"$LOGS/tidemark-setup.log"
    fi
    if has_tool restic; then
        restic init --repository-version 2 >"$LOGS/restic-init.log" 2>&1
    fi
    if has_tool borg; then
        borg init --encryption=repokey "$BORG_REPO_DIR" >"$LOGS/borg-init.log" 2>&1
    fi

    copy_stage full
    apply_changes scattered
    copy_stage incr-scattered
    apply_changes clustered
    copy_stage incr-clustered
    restore_stage
    verify_stage
    rm -rf "$R" # scratch of a finished round (its logs stay)
}

for ((round = 1; round <= ROUNDS; round++)); do
    run_round "$round"
done

# ---------------------------------------------------------------------------- report

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$OUT_DIR/copies-$stamp.json
meta=(--meta "size_mib=$SIZE_MIB" --meta "seed=$SEED" --meta "tools=$TOOLS"
    --meta "drop_caches=$DROP" --meta "borg_compression=$BORG_COMPRESSION"
    --meta "date=$stamp" --meta "cpus=$(nproc)" --meta "rounds=$ROUNDS"
    --meta "commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
        if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null) ]]; then echo '+dirty'; fi)"
    --meta "sequence=full, incr-scattered, incr-clustered (on top), restore newest, verify all; per round, tools rotated")
has_tool restic && meta+=(--meta "restic=$(restic version | head -n1)")
has_tool borg && meta+=(--meta "borg=$(borg --version)")
has_tool tidemark && meta+=(--meta "tidemark=$("$TM" --version)")
echo
rc=0
python3 "$BENCH/copies_data.py" report "$RESULTS" "$out" --logs "$WORK/logs" "${meta[@]}" || rc=$?
cp "$out" "$OUT_DIR/copies-latest.json"
exit $rc
