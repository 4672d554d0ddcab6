#!/usr/bin/env bash
# The GPU proofs in one device session (CUDA and Vulkan on the lent NVIDIA machine),
# with only the runtime wheel (and matplotlib for the report) installed there:
#   1. examples/gpu     the GPU example's tests (cuda, vulkan with vulkan-ampere, local-task)
#   2. examples/faults  a crashing kernel (CPU), an illegal address and an endless kernel (CUDA):
#                       each is one line, and every other case still runs
#   3. examples/bench_gpu  a 4096^3 f32 matmul benchmarked on cuda and local-task (issue 13)
#
# Here (compiler installed, repo root):
#   (cd examples/gpu && scons -Q) && (cd examples/faults && scons -Q) && benchmarks/gpu_bench_matmul.sh prepare
#   Vulkan loaders into .gl (see the device tool's README).
# There: bash benchmarks/gpu_session.sh, carrying examples/{gpu,faults,bench_gpu}/build, .whl and .gl.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
site=/tmp/iree_bench_py
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/bench/*.whl || exit 1
chmod +x "$site"/iree/_runtime_libs/iree-* 2>/dev/null || true
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1
log="$OUT/gpu_session.log"
{
    nvidia-smi -L
    python3 -c "import iree.runtime as r; print('drivers:', r.query_available_drivers())"
    echo "== 1. examples/gpu: python3 -m iree_build test examples/gpu/build --require-devices"
    python3 -m iree_build test examples/gpu/build --require-devices --retest
    echo "exit $?"
    echo "== 2. examples/faults: python3 -m iree_build test examples/faults/build"
    time python3 -m iree_build test examples/faults/build --retest
    echo "exit $?"
    cp examples/faults/build/iree_test_results.xml "$OUT/faults_junit.xml"
    echo "== 3. benchmarks/gpu_bench_matmul.sh run"
    WHEELS=.whl/bench bash benchmarks/gpu_bench_matmul.sh run
    echo "exit $?"
} 2>&1 | tee "$log"
