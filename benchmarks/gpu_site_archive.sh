#!/usr/bin/env bash
# Makes .dev/site.tar.xz for benchmarks/gpu_session.sh: the cp312 iree-base-compiler and
# iree-base-runtime (the versions installed here), scons and toml, unpacked into one folder
# less what the GPU session never runs (iree-opt, iree-link, the runtime's tracy build), and
# archived with xz, so that the compiler fits beside the tree in one device call (64 MiB).
#   here (repo root, the venv active): bash benchmarks/gpu_site_archive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ver() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$tmp/whl" "iree-base-compiler==$(ver iree-base-compiler)" "iree-base-runtime==$(ver iree-base-runtime)" \
    scons toml
python3 -m pip install -q --no-deps --no-compile --target "$tmp/site" --python-version 3.12 \
    --implementation cp --only-binary=:all: "$tmp"/whl/*.whl
rm -rf "$tmp/site/bin" "$tmp/site/iree/_runtime_libs_tracy" \
    "$tmp/site/iree/compiler/_mlir_libs/iree-opt" "$tmp/site/iree/compiler/_mlir_libs/iree-link"
mkdir -p .dev
tar -cf - -C "$tmp/site" . | xz -T2 -6 >.dev/site.tar.xz
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >>.git/info/exclude
du -h .dev/site.tar.xz
