"""Every file a module depends on is in the graph: flags' files, flag files, MLIR objects."""

from __future__ import annotations

from conftest import ADD_MLIR, Project

SPEC = """\
module attributes { transform.with_named_sequence } {
  transform.named_sequence @__kernel_config(%variant_op: !transform.any_op {transform.consumed}) -> !transform.any_op
      attributes { iree_codegen.tuning_spec_entrypoint } {
    transform.yield %variant_op : !transform.any_op
  }
}
"""

OBJ_MLIR = """\
func.func @add(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> attributes {
    objects = [#hal.executable.object<{path = "kernels/k.o"}>]} {
  %0 = arith.addf %a, %b : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""


def deps_project(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="plain", src="add.mlir")
        iree_module(name="obj", src="obj.mlir")
        SConscript("sub/SConscript")
        """)
    project.write("sub/SConscript", """\
        iree_module(name="tuned", src="../add.mlir", flags=["--iree-codegen-tuning-spec-path=spec.mlir"])
        iree_module(name="filed", src="../add.mlir", flags=["@opt.flags"])
        """)
    project.write("add.mlir", ADD_MLIR)
    project.write("obj.mlir", OBJ_MLIR)
    project.write("kernels/k.o", "not really an object; the attribute only names it\n")
    project.write("sub/spec.mlir", SPEC)
    project.write("sub/opt.flags", "# optimisation flags\n--iree-opt-level=O2\n")


def test_each_referenced_file_rebuilds_exactly_its_dependents(project: Project) -> None:
    deps_project(project)
    first = project.scons()
    assert first.returncode == 0, first.output
    assert first.compiled() == ["obj.vmfb", "plain.vmfb", "sub/filed.vmfb", "sub/tuned.vmfb"]

    tree = project.scons("--tree=prune", "sub/tuned.vmfb", "obj.vmfb")
    assert "+-sub/spec.mlir" in tree.stdout and "+-kernels/k.o" in tree.stdout

    project.write("sub/spec.mlir", SPEC + "// edited\n")
    spec = project.scons("--debug=explain")
    assert spec.compiled() == ["sub/tuned.vmfb"]
    assert "rebuilding `sub/tuned.vmfb' because `sub/spec.mlir' changed" in spec.stdout

    project.write("sub/opt.flags", "--iree-opt-level=O1\n")
    flagfile = project.scons("--debug=explain", "--iree-verbose")
    assert [l for l in flagfile.stdout.splitlines() if "iree-compile " in l][0].count("--iree-opt-level=O1") == 1
    assert "`sub/opt.flags' changed" in flagfile.stdout

    project.write("kernels/k.o", "changed\n")
    obj = project.scons("--debug=explain")
    assert obj.compiled() == ["obj.vmfb"]
    assert "rebuilding `obj.vmfb' because `kernels/k.o' changed" in obj.stdout

    assert project.scons().compiled() == []


def test_missing_referenced_files_are_clear_errors(project: Project) -> None:
    deps_project(project)
    project.path("kernels/k.o").unlink()
    run = project.scons("obj.vmfb")
    assert run.returncode == 2
    assert "Implicit dependency `kernels/k.o' not found, needed by target `obj.vmfb'" in run.stderr

    project.path("sub/spec.mlir").unlink()
    run = project.scons()
    assert run.returncode == 2
    assert ("scons: *** sub/SConscript:1: a compiler flag names 'spec.mlir', which does not exist "
            "(sub/spec.mlir)") in run.stderr
    assert "Traceback" not in run.output
