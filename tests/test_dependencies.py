"""Every file a module depends on is in the graph: flags' files, flag files, MLIR objects."""

from __future__ import annotations

import json
import shutil

from conftest import ADD_MLIR, MUL_MLIR, Project

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
    assert [ln for ln in flagfile.stdout.splitlines() if "iree-compile " in ln][0].count("--iree-opt-level=O1") == 1
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


def test_compileflags_flag_files_are_dependencies_relative_to_their_sconscript(project: Project) -> None:
    """``$IREE_COMPILEFLAGS`` names files the way ``flags=`` does: relative to the SConscript
    declaring the module, each a dependency (a flag file, a tuning spec)."""
    project.write("SConstruct", """\
        from iree_rules import *
        tuned = IreeEnvironment(IREE_COMPILEFLAGS=["@opt.flags"])
        tuned.IreeModule("a", "add.mlir")
        tuned.IreeModule("b", "mul.mlir")
        iree_module(name="plain", src="add.mlir")
        spec = IreeEnvironment(IREE_COMPILEFLAGS=["--iree-codegen-tuning-spec-path=spec.mlir"])
        spec.IreeModule("specced", "add.mlir")
        SConscript("sub/SConscript", exports="tuned")
        """)
    project.write("sub/SConscript", """\
        Import("tuned")
        tuned.IreeModule("c", "../add.mlir")
        IreeEnvironment(IREE_COMPILEFLAGS=["@#opt.flags"]).IreeModule("d", "../add.mlir")  # the top's
        """)
    project.write("add.mlir", ADD_MLIR)
    project.write("mul.mlir", MUL_MLIR)
    project.write("spec.mlir", SPEC)
    project.write("opt.flags", "--iree-opt-level=O2\n")
    project.write("sub/opt.flags", "--iree-opt-level=O1\n")
    first = project.scons("--iree-verbose")
    assert first.returncode == 0, first.output
    lines = first.commands()
    assert "--iree-opt-level=O2" in lines["a.vmfb"] and "--iree-opt-level=O2" in lines["b.vmfb"]
    assert "--iree-opt-level=O1" in lines["sub/c.vmfb"]  # sub/opt.flags, not the top folder's
    assert "--iree-opt-level=O2" in lines["sub/d.vmfb"]
    assert "--iree-opt-level" not in lines["plain.vmfb"]

    project.write("opt.flags", "--iree-opt-level=O3\n")
    edited = project.scons("--debug=explain")
    assert edited.compiled() == ["a.vmfb", "b.vmfb", "sub/d.vmfb"]
    assert "rebuilding `a.vmfb' because `opt.flags' changed" in edited.stdout

    project.write("sub/opt.flags", "--iree-opt-level=O3\n")
    assert project.scons().compiled() == ["sub/c.vmfb"]

    project.write("spec.mlir", SPEC + "// edited\n")
    assert project.scons().compiled() == ["specced.vmfb"]
    assert project.scons("-q").returncode == 0


def test_a_generated_flag_file_is_built_first(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        SConscript("src/SConscript", variant_dir="build", duplicate=False)
        """)
    project.write("src/SConscript", """\
        def write_flags(target, source, env):
            with open(str(target[0]), "w") as f:
                f.write(source[0].get_text_contents().replace("LEVEL", "O2"))
        Command("gen.flags", "flags.in", write_flags)
        iree_module(name="g", src="add.mlir", flags=["@gen.flags"])
        env = IreeEnvironment(IREE_COMPILEFLAGS=["@gen.flags"])
        env.IreeModule("e", "add.mlir")
        """)
    project.write("src/add.mlir", ADD_MLIR)
    project.write("src/flags.in", "--iree-opt-level=LEVEL\n")
    run = project.scons("--iree-verbose")
    assert run.returncode == 0, run.output
    lines = run.commands()
    assert "--iree-opt-level=O2" in lines["build/g.vmfb"] and "--iree-opt-level=O2" in lines["build/e.vmfb"]
    order = [ln for ln in run.stdout.splitlines() if ln.startswith("write_flags") or "iree-compile " in ln]
    assert order[0].startswith("write_flags"), order

    project.write("src/flags.in", "--iree-opt-level=O1\n# LEVEL\n")
    again = project.scons()
    assert again.compiled() == ["build/e.vmfb", "build/g.vmfb"]
    assert project.scons("-q").returncode == 0

    shutil.rmtree(project.path("build"))  # --iree-commands expands it too: made first
    commands = project.scons("--iree-commands")
    assert commands.returncode == 0, commands.output
    listed = json.loads(project.path("build/iree_compile_commands.json").read_text())
    assert [c["arguments"].count("--iree-opt-level=O1") for c in listed] == [1, 1]


def test_a_missing_flag_file_is_a_declaration_error(project: Project) -> None:
    project.write("SConstruct", 'from iree_rules import *\nSConscript("sub/SConscript")\n')
    project.write("add.mlir", ADD_MLIR)
    cases = {
        'iree_module(name="a", src="../add.mlir", flags=["@nope.flags"])':
            "a compiler flag names 'nope.flags', which does not exist (sub/nope.flags)",
        'IreeEnvironment(IREE_COMPILEFLAGS=["@nope.flags"]).IreeModule("a", "../add.mlir")':
            "$IREE_COMPILEFLAGS names 'nope.flags', which does not exist (sub/nope.flags)",
        'IreeEnvironment(IREE_COMPILEFLAGS=["--iree-codegen-tuning-spec-path=s.mlir"]).IreeModule("a", "../add.mlir")':
            "$IREE_COMPILEFLAGS names 's.mlir', which does not exist (sub/s.mlir)",
    }
    for line, message in cases.items():
        project.write("sub/SConscript", "# a comment\n" + line + "\n")
        run = project.scons()
        assert run.returncode == 2, run.output
        assert run.stderr.strip() == f"scons: *** sub/SConscript:2: {message}", run.stderr


GEN_OBJ_MLIR = OBJ_MLIR.replace("kernels/k.o", "build/k.o")


def test_an_object_another_rule_builds_is_found_from_the_top_folder(project: Project) -> None:
    """``#hal.executable.object`` paths are relative to the top folder (where the compiler
    runs); one that names a file SCons builds is that node, before it exists."""
    project.write("SConstruct", """\
        from iree_rules import *
        SConscript("src/SConscript", variant_dir="build", duplicate=False)
        """)
    project.write("src/SConscript", """\
        Command("k.o", "k.txt", Copy("$TARGET", "$SOURCE"))
        iree_module(name="obj", src="obj.mlir")
        """)
    project.write("src/obj.mlir", GEN_OBJ_MLIR)
    project.write("src/k.txt", "not really an object\n")
    run = project.scons("build/obj.vmfb")  # the module first: its object does not exist yet
    assert run.returncode == 0, run.output
    assert run.compiled() == ["build/obj.vmfb"]
    project.write("src/k.txt", "changed\n")
    assert project.scons().compiled() == ["build/obj.vmfb"]
