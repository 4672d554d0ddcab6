#!/usr/bin/env bash
# The GPU proofs in one device session (CUDA and Vulkan on the lent NVIDIA machine):
#   1. examples/gpu     the GPU example's tests (cuda, vulkan with vulkan-ampere, local-task)
#   2. examples/faults  a crashing kernel (CPU), an illegal address and an endless kernel (CUDA):
#                       each is one line, and every other case still runs
#   3. examples/bench_gpu  a 4096^3 f32 matmul benchmarked on cuda and local-task (issue 13)
#   4. benchmarks/test_runner.py --jobs 16 (the native iree-run-module loop as the baseline),
#      where the compiler came along (the site archive below)
#   5. lanes: --devices cuda (every GPU of the driver), one GPU by URI (cuda://0; cuda://1 absent
#      here is one line), two lanes on the one GPU (--device-lanes=cuda:2,vulkan:2) and the faults
#      on two lanes; benchmarks/lanes_report.py says where each test ran (0 overlaps per lane)
#
# Here (compiler installed, repo root):
#   (cd examples/gpu && scons -Q) && (cd examples/faults && scons -Q) && (cd examples/bench_gpu && scons -Q)
#   Vulkan loaders into .gl (see the device tool's README), and either
#   - .whl/bench: the runtime wheel and matplotlib's (benchmarks/gpu_bench_matmul.sh prepare), or
#   - .dev/site.tar.xz (benchmarks/gpu_site_archive.sh): the cp312 iree-base-compiler (less iree-opt and iree-link), iree-base-runtime
#     (less its tracy build), scons and toml unpacked into one folder and archived with xz
#     (about 56 MiB: the compiler fits beside the tree), for step 4 and the lane proof.
# There: bash benchmarks/gpu_session.sh, carrying examples/{gpu,faults,bench_gpu}/build, .gl and
# .whl or .dev.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder the results go to}"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
site=/tmp/iree_bench_py
if [ -f .dev/site.tar.xz ]; then
    mkdir -p "$site" /tmp/iree_bin && tar -xJf .dev/site.tar.xz -C "$site" || exit 1
    # console scripts for the unpacked packages, run by this machine's python3 (numpy is there)
    py=$(command -v python3)
    for spec in iree-run-module=iree._runtime.scripts.iree_run_module.__main__ \
                iree-benchmark-module=iree._runtime.scripts.iree_benchmark_module.__main__ \
                iree-compile=iree.compiler.tools.scripts.iree_compile.__main__; do
        printf '#!%s\nimport sys\nfrom %s import main\nsys.exit(main())\n' "$py" "${spec#*=}" \
            >"/tmp/iree_bin/${spec%%=*}"
        chmod +x "/tmp/iree_bin/${spec%%=*}"
    done
    export PATH="/tmp/iree_bin:$PATH"
    # the rules as pip installs them (iree_rules, iree_build.presets), from this tree, offline
    python3 -m pip install -q --no-deps --no-index --no-build-isolation --target /tmp/iree_rules_py . \
        || exit 1
    export PYTHONPATH="$site:/tmp/iree_rules_py"
else
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/bench/*.whl || exit 1
    export PYTHONPATH="$site:$PWD"
fi
chmod +x "$site"/iree/_runtime_libs/iree-* "$site"/iree/compiler/_mlir_libs/iree-* 2>/dev/null || true
export PYTHONUNBUFFERED=1
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
    echo "== 5. lanes"
    python3 -c "import iree.runtime as r; [print(d, r.get_driver(d).query_available_devices()) for d in ('cuda', 'vulkan')]"
    python3 -m iree_build test examples/gpu/build --require-devices --retest --devices cuda,vulkan
    echo "exit $?"
    python3 benchmarks/lanes_report.py examples/gpu/build
    echo "exit $?"
    python3 -m iree_build test examples/gpu/build --require-devices --retest --devices cuda://0 | tail -3
    echo "exit ${PIPESTATUS[0]}"
    python3 -m iree_build test examples/gpu/build --require-devices --retest --devices cuda://1 | tail -4
    echo "exit ${PIPESTATUS[0]}"
    python3 -m iree_build test examples/gpu/build --require-devices --retest -j4 --device-lanes=cuda:2,vulkan:2
    echo "exit $?"
    python3 benchmarks/lanes_report.py examples/gpu/build
    echo "exit $?"
    python3 -m iree_build test examples/gpu/build --require-devices --device-lanes=cuda:2,vulkan:2 | tail -2
    echo "exit ${PIPESTATUS[0]}"
    time python3 -m iree_build test examples/faults/build --retest -j4 --device-lanes=cuda:2
    echo "exit $?"
    python3 benchmarks/lanes_report.py examples/faults/build
    echo "exit $?"
    if python3 -c "import iree.compiler" 2>/dev/null; then
        echo "== 4. benchmarks/test_runner.py --jobs 16 ($(nproc) cores)"
        python3 benchmarks/test_runner.py --jobs 16 --rounds 3
        echo "exit $?"
    fi
} 2>&1 | tee "$log"
