"""iree_module end to end: real SCons processes, the real compiler, real files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ADD_MLIR, BAD_MLIR, MATMUL_MLIR, MUL_MLIR, Project, worker_pids

THREE = """\
from iree_rules import *
SConscript("src/SConscript", variant_dir="build", duplicate=False)
"""

THREE_SCONSCRIPT = """\
iree_module(name="add", src="add.mlir")
iree_module(name="mul", src="mul.mlir", cpu="host")
iree_module(name="mm", src="mm.mlir", target_backends=["llvm-cpu", "vmvx"])
"""


def three_modules(project: Project) -> None:
    project.write("SConstruct", THREE)
    project.write("src/SConscript", THREE_SCONSCRIPT)
    project.write("src/add.mlir", ADD_MLIR)
    project.write("src/mul.mlir", MUL_MLIR)
    project.write("src/mm.mlir", MATMUL_MLIR)


def run_module(vmfb: Path, function: str, *args):
    import iree.runtime as rt

    config = rt.Config("local-task")
    ctx = rt.SystemContext(config=config)
    ctx.add_vm_module(rt.VmModule.copy_buffer(ctx.instance, vmfb.read_bytes()))
    return getattr(ctx.modules.module, function)(*args)


def test_first_build_noop_and_clean(project: Project) -> None:
    import numpy as np

    three_modules(project)
    first = project.scons()
    assert first.returncode == 0, first.output
    assert first.compiled() == ["build/add.vmfb", "build/mm.vmfb", "build/mul.vmfb"]
    assert "IREE compile src/mm.mlir -> build/mm.vmfb [llvm-cpu, vmvx, cpu=generic]" in first.stdout
    a = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(run_module(project.path("build/add.vmfb"), "add", a, a).to_host(), a + a)

    again = project.scons("-q")  # -q: exit 0 only when everything is up to date
    assert again.returncode == 0, again.output
    noop = project.scons()
    assert noop.compiled() == []

    clean = project.scons("-c")
    assert clean.returncode == 0
    assert not list(project.path("build").glob("*.vmfb"))


def test_source_edit_flag_edit_and_touch(project: Project) -> None:
    three_modules(project)
    assert project.scons().returncode == 0

    project.write("src/mul.mlir", MUL_MLIR + "// an edit\n")
    edit = project.scons("--debug=explain")
    assert edit.compiled() == ["build/mul.vmfb"]
    assert "`src/mul.mlir' changed" in edit.stdout

    project.write("src/SConscript", THREE_SCONSCRIPT.replace(
        'src="add.mlir")', 'src="add.mlir", flags=["--iree-opt-level=O1"])'))
    flag = project.scons("--debug=explain")
    assert flag.compiled() == ["build/add.vmfb"]
    assert "the build action changed" in flag.stdout
    assert "flag: --iree-opt-level=O1" in flag.stdout

    os.utime(project.path("src/mm.mlir"))
    time.sleep(0.01)
    project.path("src/mm.mlir").touch()
    touched = project.scons()
    assert touched.returncode == 0
    assert touched.compiled() == []


def test_compiler_identity_is_in_the_signature(project: Project, tmp_path_factory) -> None:
    cache = tmp_path_factory.mktemp("cache")
    env = {"IREE_BUILD_CACHE_DIR": str(cache)}
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    project.write("add.mlir", ADD_MLIR)
    assert project.scons(env=env).returncode == 0
    (info,) = cache.glob("compiler-*.json")
    info.write_text(info.read_text().replace('"version": "', '"version": "9.9.9-other-'))
    rebuilt = project.scons("--debug=explain", env=env)
    assert rebuilt.compiled() == ["add.vmfb"]
    assert "compiler: iree-base-compiler 9.9.9-other-" in rebuilt.stdout


def test_host_cpu_is_resolved_into_the_flags(project: Project) -> None:
    import llvmlite.binding as llvm

    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir", cpu="host")\n')
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("--iree-verbose")
    assert run.returncode == 0, run.output
    host = llvm.get_host_cpu_name()
    assert f"--iree-llvmcpu-target-cpu={host} " in run.stdout
    assert "--iree-llvmcpu-target-cpu=host" not in run.stdout
    assert "--iree-llvmcpu-target-cpu-features=" in run.stdout
    assert f"[llvm-cpu, cpu={host}]" not in run.stdout  # verbose mode shows the command instead


def test_bad_mlir_shows_diagnostics_and_leaves_no_output(project: Project) -> None:
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    project.write("add.mlir", ADD_MLIR)
    assert project.scons().returncode == 0
    assert project.path("add.vmfb").exists()
    project.write("add.mlir", BAD_MLIR)
    bad = project.scons()
    assert bad.returncode != 0
    assert "add.mlir:2:19: error: use of value '%a' expects different type" in bad.stderr
    assert "scons: *** [add.vmfb] IREE compile failed: add.mlir:2:19: error:" in bad.stderr
    assert "Traceback" not in bad.output
    assert not project.path("add.vmfb").exists()  # the stale module is gone too
    assert [p.name for p in project.root.iterdir() if p.name.startswith(".add.vmfb")] == []


def test_an_empty_source_fails_naming_the_file_not_a_python_exception(project: Project) -> None:
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="e", src="e.mlir")\n')
    project.write("e.mlir", "")
    run = project.scons()
    assert run.returncode == 2 and "Traceback" not in run.output, run.output
    assert "scons: *** [e.vmfb] IREE compile failed: e.mlir:0:0: error: outer module does not contain a vm.module op" \
        in run.stderr.splitlines(), run.stderr
    assert "ValueError" not in run.output and not project.path("e.vmfb").exists()


def test_compiler_crash_fails_only_that_target_with_k(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="crash", src="add.mlir", target_backends=["vulkan-spirv"],
                    flags=["--iree-vulkan-target=sm_90"])
        iree_module(name="add", src="add.mlir")
        iree_module(name="mul", src="mul.mlir")
        """)
    project.write("add.mlir", ADD_MLIR)
    project.write("mul.mlir", MUL_MLIR)
    run = project.scons("-k", "-j1")
    assert run.returncode != 0
    assert re.search(r"\[crash\.vmfb\] the IREE compiler crashed \(SIG(SEGV|ABRT)\)", run.stderr), run.stderr
    assert "Unknown Vulkan target 'sm_90'" in run.stderr
    assert project.path("add.vmfb").exists() and project.path("mul.vmfb").exists()
    assert not project.path("crash.vmfb").exists()
    assert worker_pids(project.root) == []


def test_build_killed_mid_compile_leaves_no_partial_output(project: Project) -> None:
    # Big enough that the compile is surely running when the build is killed.
    n = 512
    big = MATMUL_MLIR.replace("8x16", f"{n}x{n}").replace("16x4", f"{n}x{n}").replace("8x4", f"{n}x{n}")
    project.write("SConstruct", 'from iree_rules import *\n'
                  + "".join(f'iree_module(name="m{i}", src="m{i}.mlir")\n' for i in range(4)))
    for i in range(4):
        project.write(f"m{i}.mlir", big.replace("@mm", f"@mm{i}"))
    proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line and "IREE compile" not in line:
        line = proc.stdout.readline()
    assert "IREE compile" in line, line
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while worker_pids(project.root) and time.time() < deadline:
        time.sleep(0.1)
    assert worker_pids(project.root) == []
    leftovers = [p.name for p in project.root.iterdir() if ".vmfb" in p.name]
    complete = [name for name in leftovers if name.endswith(".vmfb") and not name.startswith(".")]
    assert all(not name.startswith(".") for name in leftovers), leftovers  # no temp files
    assert len(complete) < 4
    for name in complete:  # whatever exists is whole: it loads
        import iree.runtime as rt
        rt.VmModule.copy_buffer(rt.VmInstance(), project.path(name).read_bytes())
    rerun = project.scons()
    assert rerun.returncode == 0, rerun.output
    assert sorted(p.name for p in project.root.glob("*.vmfb")) == [f"m{i}.vmfb" for i in range(4)]


def test_declaration_errors_name_the_sconscript_line(project: Project) -> None:
    project.write("SConstruct", THREE)
    project.write("src/add.mlir", ADD_MLIR)
    cases = {
        'iree_module(name="add", src="add.mlir", target_backends=["llvm-gpu"])':
            "iree_module target_backends: unknown target backend 'llvm-gpu' (did you mean 'llvm-cpu'?); "
            "known target backends: llvm-cpu, vmvx",
        'iree_module(name="add", src="add.mlir", target_backends=["webgpu-wgsl"])':
            "iree_module target_backends: target backend 'webgpu-wgsl' is not registered in this compiler; "
            "registered: cuda, llvm-cpu",
        'iree_module(name="add", src="add.mlir", cpu="pentium9")':
            "iree_module cpu: unknown CPU 'pentium9' for x86_64; use 'host', "
            "'generic' or one of:",
        'iree_module(name="add", src="nope.mlir")':
            "iree_module src: source src/nope.mlir not found",
        'iree_module(name="add", src="add.mlir", flags=["O3"])':
            "iree_module flags: 'O3' does not start with '-' (or '@' for a flag file)",
    }
    for line, message in cases.items():
        project.write("src/SConscript", "# a comment\n" + line + "\n")
        run = project.scons()
        assert run.returncode == 2, run.output
        assert f"scons: *** src/SConscript:2: {message}" in run.stderr, run.stderr
        assert "Traceback" not in run.output
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_same_output_declared_twice_is_an_error(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="add", src="add.mlir", target_backends=["llvm-cpu"])
        iree_module(name="add", src="add.mlir", target_backends=["vmvx"])
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons()
    assert run.returncode == 2
    assert "SConstruct:3: add.vmfb is already declared at SConstruct:2 [llvm-cpu, cpu=generic]" in run.stderr


def test_builder_with_clone_and_overrides(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        env = IreeEnvironment(IREE_TARGET_BACKENDS=["vmvx"])
        fast = env.Clone(IREE_COMPILEFLAGS=["--iree-opt-level=O2"])
        env.IreeModule("plain", "add.mlir")
        fast.IreeModule("fast", "add.mlir")
        fast.iree_module(name="cpu", src="add.mlir", target_backends=["llvm-cpu"])
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons("--iree-verbose")
    assert run.returncode == 0, run.output
    lines = {ln.rsplit(" -o ", 1)[1]: ln for ln in run.stdout.splitlines() if "iree-compile " in ln}
    assert "--iree-hal-local-target-device-backends=vmvx" in lines["plain.vmfb"]
    assert "--iree-opt-level" not in lines["plain.vmfb"]
    assert "--iree-opt-level=O2" in lines["fast.vmfb"]
    assert "--iree-hal-local-target-device-backends=llvm-cpu" in lines["cpu.vmfb"]
    assert "--iree-opt-level=O2" in lines["cpu.vmfb"]


def test_signature_does_not_hang_on_python_bytecode(project: Project, tmp_path_factory) -> None:
    """Changing the rules' Python code (as a Python upgrade changes bytecode) rebuilds nothing."""
    import iree_rules

    import iree_build

    copy = tmp_path_factory.mktemp("rules_copy")
    shutil.copytree(Path(iree_rules.__file__).parent, copy / "iree_rules")
    shutil.copytree(Path(iree_build.__file__).parent, copy / "iree_build")
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    project.write("add.mlir", ADD_MLIR)
    env = {"PYTHONPATH": str(copy)}
    assert project.scons(env=env).compiled() == ["add.vmfb"]
    # The action's own function: what a plain SCons function action signs (its bytecode
    # and constants); edited, such an action would rebuild every module.
    action = copy / "iree_rules" / "compile_action.py"
    text = action.read_text()
    body = "def _run(target, source, env):\n    return run_step("
    assert body in text
    action.write_text(text.replace(body, "def _run(target, source, env):\n    unused = [1, 2, 3]\n"
                                         "    return run_step(", 1))
    assert project.scons(env=env).compiled() == []
    # Signed as SCons' own FunctionAction signs (its bytecode), such an edit rebuilds: the
    # check above can fail.
    explicit = copy / "iree_rules" / "explicit_action.py"
    explicit.write_text(explicit.read_text().replace(
        "    def get_presig(self, target, source, env, executor=None) -> bytes:",
        "    def _unused_get_presig(self, target, source, env, executor=None) -> bytes:", 1))
    assert project.scons(env=env).compiled() == ["add.vmfb"]  # another kind of signature
    assert project.scons(env=env).compiled() == []
    # Not the same size as before: Python takes a .pyc as fresh by its source's size and
    # mtime in whole seconds, and this edit may come within the second of the last.
    action.write_text(action.read_text().replace("unused = [1, 2, 3]", "unused = 'another constant'"))
    assert project.scons(env=env).compiled() == ["add.vmfb"]


def test_tool_loads_by_name_and_by_function(project: Project) -> None:
    project.write("SConstruct", """\
        import iree_rules
        env = Environment(tools=["default", "iree_tool"], toolpath=[iree_rules.TOOLPATH],
                          IREE_TARGET_BACKENDS=["vmvx"])
        env.iree_module(name="a", src="add.mlir")
        Environment(tools=["default", iree_rules.generate]).IreeModule("b", "add.mlir")
        import iree.runtime  # the tool must not shadow the IREE packages
        """)
    project.write("add.mlir", ADD_MLIR)
    run = project.scons()
    assert run.returncode == 0, run.output
    assert run.compiled() == ["a.vmfb", "b.vmfb"]
    assert "[vmvx]" in run.stdout


def test_loading_the_tool_neither_exits_nor_connects(project: Project) -> None:
    """``generate`` with a cluster configured, another build holding the tree and a bad
    ``--iree-export``: it returns, and nothing connects to the scheduler; what is wrong is
    said at the first declaration (or the first action that needs the cluster)."""
    import fcntl
    import os
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        project.write("SConstruct", f"""\
            import iree_rules
            env = Environment(tools=["default", iree_rules.generate], IREE_CLUSTER="{address}")
            print("generate returned")
            if ARGUMENTS.get("declare"):
                env.iree_module("add", "add.mlir")
            """)
        project.write("add.mlir", ADD_MLIR)

        def no_connection() -> None:
            try:
                listener.accept()
                raise AssertionError("loading the tool connected to the scheduler")
            except BlockingIOError:
                pass

        plain = project.scons()
        assert plain.returncode == 0 and "generate returned" in plain.stdout, plain.output
        no_connection()
        lock = os.open(project.path(".iree_build.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(lock, f"{os.getpid()} scons".encode())  # a live holder
            held = project.scons("--iree-export=nonsense")
            assert held.returncode == 0 and "generate returned" in held.stdout, held.output
            declared = project.scons("declare=1")
            assert declared.returncode == 2 and "generate returned" in declared.stdout, declared.output
            assert declared.stderr.strip() == (
                f"scons: *** .iree_build.lock: another scons (PID {os.getpid()}) is using this tree; "
                "wait for it to finish (nothing was touched)")
            bad = project.scons("declare=1", "--iree-export=nonsense")
            assert bad.stderr.strip() == ("scons: *** command line: --iree-export=nonsense: "
                                          "expected cmake:DIR or bazel:DIR"), bad.output
        finally:
            os.close(lock)
        no_connection()


def test_a_module_for_two_devices_runs_each_dispatch_on_either(project: Project) -> None:
    """Built for ``llvm-cpu`` and ``cuda`` (a device select), a module of two dispatches
    loads and passes on ``local-task``: the compiler's executable linking would keep only
    one device's variants (IREE 3.13 then says `does not support any variant of
    executable`), so a select of several devices is compiled unlinked."""
    project.write("SConstruct", "from iree_rules import *\n"
                  "iree_module(name='two', src='two.mlir', target_backends=['llvm-cpu', 'cuda'], cpu='generic')\n"
                  "for f, want in (('add', 'f32=2 4 6 8'), ('mul', 'f32=1 4 9 16')):\n"
                  "    iree_test(name=f, module='two', function=f, inputs=['4xf32=1 2 3 4', '4xf32=1 2 3 4'],\n"
                  "              expected=['4x' + want], devices=['local-task'])\n")
    project.write("two.mlir", ADD_MLIR + MUL_MLIR)
    run = project.scons("test")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines()[-1] == "2 passed, 0 failed, 0 skipped", run.output
