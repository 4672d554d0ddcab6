#!/usr/bin/env bash
# GPU proof of `iree_benchmark` (issue 13): a 4096x4096x4096 f32 matmul, built here
# for cuda (sm_80 PTX) and llvm-cpu (x86-64-v3), measured on the GPU machine with
# `python -m iree_build bench` (runtime wheel + this repo's pure-Python code; no
# compiler, no SCons there), twice: the first run saves a baseline, the second is
# compared with it, so the report shows two runs and the baseline.
#
#   here (CPU machine, compiler installed, repo root):
#       benchmarks/gpu_bench_matmul.sh prepare
#     builds examples/bench_gpu/build (matmul4096.vmfb, iree_benchmarks.json) and
#     downloads cp312 wheels of iree-base-runtime and matplotlib (+ its deps) into .whl/bench
#   there (device tool, repo root; carry examples/bench_gpu/build and .whl/bench):
#       bash benchmarks/gpu_bench_matmul.sh run
#     prints the BENCH lines and copies into $OUT: bench.log, baseline.json,
#     iree_bench_results.json, iree_bench_history.jsonl, iree_bench_report.html and
#     iree_bench_plots/*.png (the page links the plots by relative path).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-examples/bench_gpu/build}
WHEELS=${WHEELS:-.whl/bench}

prepare() {
    (cd examples/bench_gpu && python -m SCons -Q)
    mkdir -p "$WHEELS"
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        iree-base-runtime==3.13.0 ml_dtypes matplotlib contourpy cycler fonttools kiwisolver packaging \
        pillow pyparsing python-dateutil six
    du -sh "$BUILD" "$WHEELS"
}

run() {
    : "${OUT:?set OUT to the folder the results go to}"
    local py=/tmp/iree_bench_py
    export PYTHONPATH="$py:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    if ! python3 -c "import iree.runtime, matplotlib" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --target "$py" "$WHEELS"/*.whl
        chmod +x "$py"/iree/_runtime_libs/iree-* 2>/dev/null || true
    fi
    {
        nvidia-smi -L 2>/dev/null || true
        python3 -c "from iree.runtime import version; import matplotlib, sys
print('python', sys.version.split()[0], '| iree.runtime', version.VERSION, '| matplotlib', matplotlib.__version__)"
    } | tee "$OUT/bench.log"
    rm -f "$BUILD/iree_bench_history.jsonl"  # the history of this machine only
    local rc=0
    python3 -m iree_build bench "$BUILD" --require-devices --save "$OUT/baseline.json" \
        2>&1 | tee -a "$OUT/bench.log" || rc=1
    python3 -m iree_build bench "$BUILD" --require-devices --baseline "$OUT/baseline.json" \
        2>&1 | tee -a "$OUT/bench.log" || rc=1
    cp "$BUILD"/iree_bench_results.json "$BUILD"/iree_bench_history.jsonl \
        "$BUILD"/iree_bench_report.html "$OUT"/
    mkdir -p "$OUT/iree_bench_plots" && cp "$BUILD"/iree_bench_plots/*.png "$OUT/iree_bench_plots/"
    return $rc
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
