#!/usr/bin/env bash
# Coverage-guided fuzzing of the file readers with libFuzzer (Fuzz/README in the README's
# "Reliability" section).
#   scripts/fuzz.sh TARGET SECONDS   build Fuzz/TARGET.swift and run it for SECONDS
#   scripts/fuzz.sh --list           the targets
#   scripts/fuzz.sh --smoke          every target for a few seconds (scripts/test.sh runs this)
# RWKV_FUZZ_MAX_RUNS=N also stops a run after N executions (a campaign's "1M executions or 30 min").
# Builds go to $RWKV_FUZZ_BUILD (default /tmp/rwkv-edit-fuzz/build-<checkout hash>), outside git;
# crash inputs land in $RWKV_FUZZ_BUILD/artifacts/TARGET/. The seed corpus in Fuzz/corpus/TARGET
# is read, never written: new inputs go to a scratch corpus beside the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(pth safetensors gguf state stateformats worldvocab values evalsuite pack)
file_of() {
    case "$1" in
        pth) echo FuzzPth ;; safetensors) echo FuzzSafeTensors ;; gguf) echo FuzzGGUF ;; state) echo FuzzState ;; stateformats) echo FuzzStateFormats ;;
        worldvocab) echo FuzzWorldVocab ;; values) echo FuzzValues ;; evalsuite) echo FuzzEvalSuite ;; pack) echo FuzzPack ;;
        *) echo "unknown fuzz target '$1'; targets: ${TARGETS[*]}" >&2; exit 64 ;;
    esac
}
BUILD=${RWKV_FUZZ_BUILD:-/tmp/rwkv-edit-fuzz/build-$(echo "$ROOT" | sha1sum | cut -c1-8)}
# ASan's false stack-buffer-underflow in Swift's backtracer, whose child then holds the pipe open.
export SWIFT_BACKTRACE=enable=no
# Foundation's own leaks, listed (and explained) in the file; ours are still reported.
export LSAN_OPTIONS="suppressions=$ROOT/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# Compiler output goes to a log (the ASan link prints hundreds of harmless ld.gold warnings).
quiet() { "$@" >>"$BUILD/build.log" 2>&1 || { grep -E 'error' "$BUILD/build.log" | head -20 >&2; echo "fuzz: build failed; see $BUILD/build.log" >&2; exit 1; }; }
SAN=(-sanitize=fuzzer,address -parse-as-library -O -g -swift-version 5 -package-name rwkv_edit)

# The libraries: RWKVEdit and EditEval as instrumented static modules, the C kernels with ASan.
# Rebuilt only when a source is newer than the archive.
build_libs() {
    mkdir -p "$BUILD/ckernels"
    : >"$BUILD/build.log"
    local rw="$BUILD/libRWKVEdit.a" ev="$BUILD/libEditEval.a"
    if [ ! -f "$rw" ] || [ -n "$(find Sources/RWKVEdit Sources/CKernels -newer "$rw" -print -quit)" ]; then
        echo "fuzz: building RWKVEdit (instrumented) in $BUILD" >&2
        cat > "$BUILD/ckernels/module.modulemap" <<MAP
module CKernels {
    header "$ROOT/Sources/CKernels/include/rwkv_kernels.h"
    header "$ROOT/Sources/CKernels/include/rwkv_pool.h"
    export *
}
MAP
        local objs=()
        for c in Sources/CKernels/*.c; do
            quiet clang -O2 -g -fsanitize=address -fPIC -ISources/CKernels/include -c "$c" -o "$BUILD/ckernels/$(basename "$c" .c).o"
            objs+=("$BUILD/ckernels/$(basename "$c" .c).o")
        done
        ar rcs "$BUILD/libCKernels.a" "${objs[@]}"
        quiet swiftc "${SAN[@]}" -module-name RWKVEdit -emit-module -emit-module-path "$BUILD/RWKVEdit.swiftmodule" \
            -emit-library -static -o "$rw" -I "$BUILD/ckernels" -I Sources/CSQLite -I Sources/CZstd \
            $(find Sources/RWKVEdit -name '*.swift' | sort)
        rm -f "$ev"
    fi
    if [ ! -f "$ev" ] || [ -n "$(find Sources/EditEval -newer "$ev" -print -quit)" ]; then
        echo "fuzz: building EditEval (instrumented)" >&2
        quiet swiftc "${SAN[@]}" -module-name EditEval -emit-module -emit-module-path "$BUILD/EditEval.swiftmodule" \
            -emit-library -static -o "$ev" -I "$BUILD" -I "$BUILD/ckernels" -I Sources/CSQLite -I Sources/CZstd \
            $(find Sources/EditEval -name '*.swift' | sort)
    fi
}

build_target() {
    local t=$1 f; f=$(file_of "$t")
    local exe="$BUILD/fuzz-$t"
    if [ ! -f "$exe" ] || [ -n "$(find "Fuzz/$f.swift" Fuzz/FuzzSupport.swift "$BUILD/libRWKVEdit.a" "$BUILD/libEditEval.a" -newer "$exe" -print -quit)" ]; then
        echo "fuzz: building $t" >&2
        quiet swiftc "${SAN[@]}" -module-name "Fuzz_$t" -I "$BUILD" -I "$BUILD/ckernels" -I Sources/CSQLite -I Sources/CZstd \
            Fuzz/FuzzSupport.swift "Fuzz/$f.swift" -L "$BUILD" -lEditEval -lRWKVEdit -lCKernels -lsqlite3 -lzstd -lm -o "$exe"
    fi
}

# Runs one target; prints its executions, coverage and crash count as one line.
run_target() {
    local t=$1 secs=$2
    build_target "$t"
    local corpus="$BUILD/corpus/$t" art="$BUILD/artifacts/$t/" log="$BUILD/fuzz-$t.log"
    mkdir -p "$corpus" "$art"
    # -rss_limit_mb: the readers map files and bound their allocations; 2 GB is generous under ASan.
    "$BUILD/fuzz-$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        ${RWKV_FUZZ_MAX_RUNS:+-runs=$RWKV_FUZZ_MAX_RUNS} -artifact_prefix="$art" "$corpus" "Fuzz/corpus/$t" >"$log" 2>&1 && status=0 || status=$?
    local execs cov ft crashes
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    crashes=$(find "$art" -type f | wc -l)
    printf '%-12s %4ss  executions %-10s cov %-6s ft %-7s crashes %s  (log %s)\n' "$t" "$secs" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$crashes" "$log"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $t failed (exit $status); the input is in $art, the report in $log:" >&2
        grep -m1 -E 'ERROR|Fatal error|untyped error|deadly signal' "$log" >&2 || tail -5 "$log" >&2
        return 1
    fi
}

case "${1:-}" in
    --list) printf '%s\n' "${TARGETS[@]}" ;;
    --smoke)
        build_libs
        failed=0
        for t in "${TARGETS[@]}"; do run_target "$t" "${RWKV_FUZZ_SMOKE_SECONDS:-15}" || failed=1; done
        exit $failed ;;
    ""|-h|--help) sed -n 2,9p "$0" | sed 's/^# \{0,1\}//'; exit 64 ;;
    *)
        file_of "$1" >/dev/null
        [ $# -eq 2 ] || { echo "usage: scripts/fuzz.sh TARGET SECONDS" >&2; exit 64; }
        build_libs
        run_target "$1" "$2" ;;
esac
