"""The export engine without SCons: quoting, path substitution, stale files."""

from __future__ import annotations

import fnmatch
import json

from iree_build.export import bazel, cmake
from iree_build.export.model import Step, glob_escape, unique_names
from iree_build.export.tree import INDEX_NAME, write_tree


def test_glob_escape_selects_exactly_one_name() -> None:
    names = ["a[cuda]", "a[local-task]", "models/x:*odd?[vulkan]", "b.mlir::f[local-task]"]
    for name in names:
        assert [n for n in names if fnmatch.fnmatchcase(n, glob_escape(name))] == [name]


def test_cmake_quote_keeps_text_literal() -> None:
    assert cmake.quote('a"b\\c${X};d') == '"a\\"b\\\\c\\${X}\\;d"'
    assert unique_names(["x.vmfb", "x_vmfb", "x vmfb"]) == ["x.vmfb", "x_vmfb", "x_vmfb_2"]


def test_bazel_command_replaces_every_path_and_escapes_make_variables() -> None:
    step = Step(tool="iree-compile",
                args=("--iree-codegen-tuning-spec-path=specs/t.mlir",
                      "--iree-link-bitcode=a=lib/a.bc,lib/b.bc",
                      "--iree-codegen-transform-dialect-library=specs/t.mlir@seq",
                      "--note=$HOME", "src/m.mlir", "-o", "out/m.vmfb"),
                source="src/m.mlir", outputs=("out/m.vmfb",),
                inputs=("src/m.mlir", "specs/t.mlir", "lib/a.bc", "lib/b.bc"), declared_at="S:1")
    refs = {p: bazel.label(p) for p in step.inputs} | {"out/m.vmfb": "m.vmfb"}
    cmd = bazel._command(step, ["/x/iree-compile"], refs)
    assert cmd == ("/x/iree-compile --iree-codegen-tuning-spec-path=$(execpath //specs:t.mlir) "
                   "--iree-link-bitcode=a=$(execpath //lib:a.bc),$(execpath //lib:b.bc) "
                   "--iree-codegen-transform-dialect-library=$(execpath //specs:t.mlir)@seq "
                   "'--note=$$HOME' $(execpath //src:m.mlir) -o $(execpath m.vmfb)")


def test_a_second_export_removes_what_the_first_wrote_and_this_one_does_not(tmp_path) -> None:
    (tmp_path / "src.npy").write_bytes(b"data")
    changed = write_tree(str(tmp_path), "cmake", {"a/CMakeLists.txt": "x\n", "old.txt": "y\n"},
                         {"data/d.npy": str(tmp_path / "src.npy")})
    assert sorted(changed) == ["a/CMakeLists.txt", "data/d.npy", "old.txt"]
    assert write_tree(str(tmp_path), "cmake", {"a/CMakeLists.txt": "x\n"},
                      {"data/d.npy": str(tmp_path / "src.npy")}) == []  # unchanged: nothing rewritten
    assert not (tmp_path / "old.txt").exists() and (tmp_path / "data/d.npy").read_bytes() == b"data"
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert index["files"] == ["a/CMakeLists.txt", "data/d.npy"]
    (tmp_path / INDEX_NAME).write_text(json.dumps({"files": ["../outside.txt", "/etc/hosts"]}))
    (tmp_path.parent / "outside.txt").write_text("keep")
    write_tree(str(tmp_path), "cmake", {}, {})
    assert (tmp_path.parent / "outside.txt").read_text() == "keep"  # never outside the export
