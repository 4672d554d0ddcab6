"""The declarations as a Bazel workspace: a ``genrule`` per module, a test rule per test.

The workspace is laid out like the SCons top folder: source files are linked in
at their own paths, and each folder holding a file the build reads or writes
gets a ``BUILD.bazel`` (an SConscript's build folder holds its modules' rules
and its tests). A genrule runs the SCons build's own command with each path
replaced by ``$(execpath ...)``. A source file's exec path is its workspace
path, the string the SCons build gives the compiler; a generated source (an
imported ONNX model) is staged at its SCons path and static-library side
outputs are written at theirs, so every module is byte-identical.

Offline, two things of Bazel's own need the network; the workspace avoids both
without stubbing anything it uses: ``sh_test`` needs ``@rules_cc`` for its
launcher, so tests use a small Starlark test rule; ``bazel test`` needs
``@remote_coverage_tools`` even without coverage, so WORKSPACE points it at a
local repository whose two tools only say that coverage is not available.

Bazel has no "skipped" test outcome: tests run the runner with
``--require-devices`` (an absent device fails), and their tags carry the device
so ``bazel test --test_tag_filters=-cuda //...`` leaves them out.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections import defaultdict

from .model import Declarations, Step, Test, glob_escape, unique_names, within_folder

RULES_FILE = "iree_export.bzl"
COVERAGE_REPO = "third_party/remote_coverage_tools"

_BZL = '''"""Rules of the exported IREE build (generated)."""

def _iree_runner_test_impl(ctx):
    script = ctx.actions.declare_file(ctx.label.name + ".runner.sh")
    lines = [
        "#!/bin/sh",
        "# The runner writes result files and maps modules: give it a writable copy of the runfiles.",
        "set -eu",
        'tree="${TEST_TMPDIR}/tree"',
        'rm -rf "$tree" && mkdir -p "$tree"',
        'cp -RL "$PWD/%s/." "$tree/"' % (ctx.attr.test_dir or "."),
        'exec %s -m iree_build test "$tree" --filter %s --retest -j 1 --require-devices --junit "$XML_OUTPUT_FILE"' % (
            _quote(ctx.attr.python), _quote(ctx.attr.filter)),
    ]
    ctx.actions.write(script, "\\n".join(lines) + "\\n", is_executable = True)
    return [DefaultInfo(executable = script, runfiles = ctx.runfiles(files = ctx.files.data))]

def _quote(text):
    return "'" + text.replace("'", "'\\\\''") + "'"

iree_runner_test = rule(
    implementation = _iree_runner_test_impl,
    test = True,
    attrs = {
        "data": attr.label_list(allow_files = True),
        "test_dir": attr.string(doc = "folder of the test manifest, relative to the workspace"),
        "filter": attr.string(doc = "the runner's --filter: exactly this test"),
        "python": attr.string(doc = "Python with iree_build and iree-base-runtime"),
    },
)
'''

_UNAVAILABLE = """#!/bin/sh
echo "coverage is not available in this exported workspace (no remote_coverage_tools offline)" >&2
exit 1
"""


def label(path: str) -> str:
    """``//dir:file`` of a workspace-relative file (every folder gets a BUILD.bazel)."""
    return f"//{posixpath.dirname(path)}:{posixpath.basename(path)}"


def _local(path: str, package: str) -> str:
    rel = posixpath.relpath(path, package or ".")
    if rel.startswith("../"):
        raise ValueError(f"{path} lies outside the folder {package or '.'} of the rule that writes it")
    return rel


def _command(step: Step, tool: list[str], refs: dict[str, str]) -> str:
    """The genrule ``cmd``: the step's arguments, each path as ``$(execpath LABEL)``."""
    if refs:
        pattern = re.compile(
            r"(?<![^=,@])("
            + "|".join(re.escape(p) for p in sorted(refs, key=len, reverse=True))
            + r")(?=$|[,@]|::)"
        )
    parts = [shlex.quote(t) for t in tool]
    for arg in step.args:
        pieces, last = [], 0
        for m in pattern.finditer(arg) if refs else ():
            if m.start() > last:
                pieces.append(shlex.quote(arg[last : m.start()]).replace("$", "$$"))
            pieces.append(f"$(execpath {refs[m.group(1)]})")
            last = m.end()
        if last < len(arg) or not pieces:
            pieces.append(shlex.quote(arg[last:]).replace("$", "$$"))
        parts.append("".join(pieces))
    return " ".join(parts)


def _list(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _genrule(step: Step, name: str, tool: list[str], generated: set[str]) -> str:
    """A genrule running the step in the execroot with the SCons build's path strings.

    The compiler embeds the path of its source and of static-library side
    outputs, so a source another step generated is staged at its SCons path
    first, and side outputs are written at theirs and moved into place after.
    """
    package = step.folder
    compile_ = step.tool == "iree-compile"
    staged = [p for p in step.inputs if p in generated] if compile_ else []
    moved = list(step.outputs[1:]) if compile_ else []
    refs = {p: label(p) for p in step.inputs if not posixpath.isabs(p) and p not in staged}
    refs.update({p: _local(p, package) for p in step.outputs if p not in moved})
    srcs = [label(p) for p in step.inputs if not posixpath.isabs(p)]
    folders = sorted({posixpath.dirname(p) for p in staged + moved} - {""})
    before = [f"mkdir -p {' '.join(shlex.quote(d) for d in folders)}"] if folders else []
    before += [f"cp $(execpath {label(p)}) {shlex.quote(p)}" for p in staged]
    after = [f"mv {shlex.quote(p)} $(execpath {_local(p, package)})" for p in moved]
    after += [f"rm -f {shlex.quote(p)}" for p in staged]
    cmd = " && ".join([*before, _command(step, tool, refs), *after])
    return (
        f"genrule(  # {step.declared_at}\n"
        f'    name = "{name}",\n'
        f"    srcs = {_list(srcs)},\n"
        f"    outs = {_list(_local(p, package) for p in step.outputs)},\n"
        f"    cmd = {_starlark_string(cmd)},\n"
        + (
            '    tags = ["no-sandbox"],  # the onnx package refuses its data files as links\n'
            if step.tool == "iree-import-onnx"
            else ""
        )
        + f'    message = "IREE {step.output}",\n)\n'
    )


def _starlark_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _test(test: Test, name: str, decl: Declarations) -> str:
    files = [*test.files, decl.manifest_path()]
    tags = list(test.labels) + (["exclusive"] if test.gpu else []) + (["manual"] if test.skip else [])
    note = f"  # declared skip: {test.skip}" if test.skip else ""
    return (
        f"iree_runner_test(  # {test.declared_at}{note}\n"
        f'    name = "{name}",\n'
        f"    data = {_list(label(f) for f in files if not posixpath.isabs(f))},\n"
        f'    test_dir = "{decl.build_dir}",\n'
        f"    filter = {_starlark_string(glob_escape(test.name))},\n"
        f"    python = {_starlark_string(decl.python)},\n"
        f'    size = "small",\n    tags = {_list(tags)},\n)\n'
    )


def bazel_files(decl: Declarations) -> dict[str, str]:
    """The workspace's files: path relative to the export folder -> text."""
    header = (
        "# Generated by `scons --iree-export=bazel:DIR` from the SConscripts of\n"
        f"# {decl.top}\n# Edit those and export again; changes here are overwritten.\n"
    )
    generated = decl.generated()
    packages: dict[str, list[str]] = defaultdict(list)
    exported: dict[str, list[str]] = defaultdict(list)
    for path in [*decl.sources(), *sorted(decl.data), *([decl.manifest_path()] if decl.tests else [])]:
        exported[posixpath.dirname(path)].append(posixpath.basename(path))
    step_names = unique_names([posixpath.basename(s.output) for s in decl.steps])
    for step, name in zip(decl.steps, step_names, strict=True):
        packages[step.folder].append(_genrule(step, name.replace(".", "_"), decl_tool(decl, step), generated))
    test_names = unique_names([within_folder(t.name) for t in decl.tests])
    for test, name in zip(decl.tests, test_names, strict=True):
        packages[test.folder].append(_test(test, name, decl))
    for path in generated:
        packages.setdefault(posixpath.dirname(path), [])
    files = {}
    for package in sorted(set(packages) | set(exported) | {""}):
        body = [header]
        if any(r.startswith("iree_runner_test") for r in packages[package]):
            body.append(f'load("//:{RULES_FILE}", "iree_runner_test")\n')
        body.append('package(default_visibility = ["//visibility:public"])\n')
        if exported.get(package):
            body.append(f"exports_files({_list(sorted(set(exported[package])))})\n")
        body += packages[package]
        files[posixpath.join(package, "BUILD.bazel")] = "\n".join(body)
    files["WORKSPACE"] = (
        header + 'workspace(name = "iree_export")\n\n'
        "# `bazel test` needs this repository even without coverage; offline it\n"
        "# cannot be downloaded, so a local one says coverage is not available.\n"
        f'local_repository(name = "remote_coverage_tools", path = "{COVERAGE_REPO}")\n'
    )
    files[RULES_FILE] = _BZL
    files[f"{COVERAGE_REPO}/WORKSPACE"] = ""
    files[f"{COVERAGE_REPO}/BUILD.bazel"] = (
        'filegroup(name = "lcov_merger", srcs = ["unavailable.sh"], visibility = ["//visibility:public"])\n'
        'filegroup(name = "coverage_report_generator", srcs = ["unavailable.sh"], '
        'visibility = ["//visibility:public"])\n'
    )
    files[f"{COVERAGE_REPO}/unavailable.sh"] = _UNAVAILABLE
    return files


def decl_tool(decl: Declarations, step: Step) -> list[str]:
    """The tool a genrule runs: the export's compiler, or the importer through its Python."""
    if step.tool == "iree-compile":
        return [decl.compiler]
    return [decl.python, "-m", "iree.compiler.tools.import_onnx"]
