"""Compiles, ONNX imports and tests on a real Dask cluster: `dask scheduler` and `dask worker`
processes on 127.0.0.1, started once for this module and stopped by PID afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ADD_MLIR, BAD_MLIR, MATMUL_MLIR, Project, write_onnx_matmul
from distributed import Client
from test_dependencies import OBJ_MLIR, SPEC

from iree_build.cluster.local import LocalCluster
from iree_build.testing.devices import probe_device

VULKAN = probe_device("vulkan").present  # lavapipe in CI: a second real device host resource
COMPILERS = ["compile-a", "compile-b"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = LocalCluster(tmp_path_factory.mktemp("dask"))
    try:
        local.start_scheduler()
        for name in COMPILERS:
            local.start_worker(name, {"iree-compiler": 1})
        local.start_worker("device", {"local-task": 1, **({"vulkan": 1} if VULKAN else {})})
        local.wait_for([*COMPILERS, "device"])
        yield local
    finally:
        local.stop()


def write_project(project: Project) -> None:
    """Modules that read every kind of extra file, an ONNX import with externalized
    weights, tests on offered devices and one on a device no worker offers."""

    write_onnx_matmul(project.path("mm.onnx"), n=8)
    project.write("SConstruct", """\
        from iree_rules import *
        import numpy as np
        VULKAN = ARGUMENTS.get("vulkan") == "True"
        CacheDir("#cache")
        iree_module(name="plain", src="add.mlir", target_backends=["llvm-cpu"] + (["vulkan-spirv"] if VULKAN else []))
        iree_module(name="obj", src="obj.mlir")
        iree_module(name="st", src="add.mlir", toolchain="llvm-cpu-static-library")  # side outputs come back too
        SConscript("sub/SConscript")
        iree_module(name="mm", src="mm.onnx", externalize_params=True)
        x = np.ones((2, 8), np.float32)
        iree_test(name="plain_test", module="plain", function="add", inputs=[[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]],
                  expected=[[2.0, 3.0, 4.0, 5.0]], devices=["local-task"] + (["vulkan"] if VULKAN else []))
        iree_test(name="mm_test", module="mm", inputs=[x],
                  expected=lambda x: x @ np.arange(64, dtype=np.float32).reshape(8, 8))
        iree_test(name="sync_test", module="plain", function="add", inputs=[[1.0] * 4, [2.0] * 4],
                  expected=[[3.0] * 4], devices=["local-sync"])
        if ARGUMENTS.get("faults"):
            iree_module(name="bad", src="bad.mlir")
            iree_module(name="crash", src="add.mlir", target_backends=["vulkan-spirv"],
                        flags=["--iree-vulkan-target=sm_90"])
        """)
    project.write("sub/SConscript", """\
        iree_module(name="tuned", src="../add.mlir", flags=["--iree-codegen-tuning-spec-path=spec.mlir"])
        iree_module(name="filed", src="../matmul.mlir", flags=["@opt.flags"])
        """)
    project.write("add.mlir", ADD_MLIR)
    project.write("matmul.mlir", MATMUL_MLIR)
    project.write("bad.mlir", BAD_MLIR)
    project.write("obj.mlir", OBJ_MLIR)
    project.write("kernels/k.o", "not really an object; the attribute only names it\n")
    project.write("sub/spec.mlir", SPEC)
    project.write("sub/opt.flags", "# optimisation flags\n--iree-opt-level=O2\n")


OUTPUTS = ["plain.vmfb", "obj.vmfb", "st.vmfb", "st_dispatch.o", "st_dispatch.h", "sub/tuned.vmfb",
           "sub/filed.vmfb", "mm.imported.mlir", "mm.irpa", "mm.vmfb"]


def test_build_and_test_on_the_cluster_as_locally(cluster: LocalCluster, tmp_path: Path) -> None:
    local, remote = Project(tmp_path / "local"), Project(tmp_path / "remote")
    write_project(local)
    write_project(remote)
    on = f"--iree-cluster={cluster.address}"
    vulkan = f"vulkan={VULKAN}"

    here = local.scons("-j2", vulkan)
    assert here.returncode == 0, here.output
    first = remote.scons(".", "test", "-j2", "-k", "faults=1", vulkan, on)
    assert first.returncode == 2, first.output
    for name in OUTPUTS:  # the same relative paths in the worker's scratch: the same bytes
        assert remote.path(name).read_bytes() == local.path(name).read_bytes(), name
    assert "IREE import mm.onnx -> mm.imported.mlir mm.irpa" in first.stdout
    assert "PASS plain_test[local-task]" in first.stdout and "PASS mm_test[local-task]" in first.stdout
    if VULKAN:
        assert "PASS plain_test[vulkan]" in first.stdout
    address = re.escape(cluster.address)
    assert re.search(rf"^SKIP sync_test\[local-sync\] \(local-sync: no worker of the Dask cluster at {address} "
                     r"offers it \(its workers offer iree-compiler=2, local-task=1", first.stdout, re.M), first.stdout
    passed = 3 if VULKAN else 2
    lines = first.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if " tests run, " in line)
    assert lines[start] == (f"{passed} tests run, 0 up to date; JUnit report: iree_test_results.xml; "
                            "page: iree_test_report.html")
    assert lines[start + 1] == "Failed compiles (2):" and lines[-1] == f"{passed} passed, 0 failed, 1 skipped"
    assert 'skipped="1"' in remote.path("iree_test_results.xml").read_text()
    # a bad source and a compiler crash fail only their own module, as locally; the workers live on
    assert "bad.mlir:2:" in first.stderr and "scons: *** [bad.vmfb] IREE compile failed: bad.mlir:2:" in first.stderr
    assert re.search(r"\[crash\.vmfb\] the IREE compiler crashed \(SIG(SEGV|ABRT) on worker compile-[ab] ",
                     first.stderr), first.stderr
    assert not remote.path("bad.vmfb").exists() and not remote.path("crash.vmfb").exists()
    assert all(cluster.procs[name].poll() is None for name in COMPILERS)
    assert "Traceback" not in first.output

    again = remote.scons(".", "test", vulkan, env={"IREE_CLUSTER": cluster.address})
    assert again.returncode == 0, again.output
    assert again.compiled() == [] and "PASS" not in again.stdout
    assert again.stdout.splitlines()[-2].startswith(
        f"0 tests run, {passed} up to date; JUnit report: iree_test_results.xml")

    assert remote.scons("-c", vulkan).returncode == 0
    cached = remote.scons(vulkan, on)
    assert cached.returncode == 0 and cached.compiled() == []
    assert "Retrieved `plain.vmfb' from cache" in cached.stdout

    runner = subprocess.run([sys.executable, "-m", "iree_build", "test", str(remote.root), "--retest",
                             "--require-devices", "--cluster", cluster.address],
                            capture_output=True, text=True, timeout=300)
    assert runner.returncode == 1, runner.stdout + runner.stderr
    assert "PASS mm_test[local-task]" in runner.stdout
    assert "FAIL sync_test[local-sync] (device required: local-sync: no worker of the Dask cluster" in runner.stdout
    assert runner.stdout.splitlines()[-1] == f"{passed} passed, 1 failed, 0 skipped"


def test_no_process_of_a_cluster_build_outlives_it(cluster: LocalCluster, project: Project) -> None:
    """scons returns once every process it started has ended: the test fork server, which
    it starts while reading the SConscripts, included (a `umount` right after failed: busy)."""
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="add", src="add.mlir")
        iree_test(name="add_test", module="add", function="add", inputs=[[1.0, 2.0, 3.0, 4.0], [1.0] * 4],
                  expected=[[2.0, 3.0, 4.0, 5.0]])
        """)
    project.write("add.mlir", ADD_MLIR)
    for round_ in ("built", "up to date"):
        proc = subprocess.Popen([sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), "test",
                                 f"--iree-cluster={cluster.address}"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                env={**os.environ, "IREE_CLUSTER_KEEPALIVE": "0"})
        out, _ = proc.communicate(timeout=300)
        left = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.getsid(int(entry.name)) == proc.pid:
                    left.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
        assert proc.returncode == 0 and "1 passed, 0 failed" in out, out
        assert left == [], (round_, left)


def agents_of(cluster: LocalCluster) -> list[int]:
    """PIDs of the live cluster agents serving ``cluster`` (by their info files)."""
    from iree_build.cluster.agent import _is_agent, agent_dir

    pids = []
    for info in agent_dir().glob("agent-*.json"):
        data = json.loads(info.read_text())
        if data["address"] == cluster.address and _is_agent(data["pid"]):
            pids.append(data["pid"])
    return pids


def test_later_builds_hand_their_work_to_the_cluster_agent(cluster: LocalCluster, project: Project) -> None:
    """The first build starts an agent that holds the connection; the next ones attach to
    it. Killed, it is replaced; idle past IREE_CLUSTER_KEEPALIVE, it ends; 0 means none."""
    from iree_build.cluster.agent import stop_agents

    stop_agents(cluster.address)
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
    on = f"--iree-cluster={cluster.address}"

    def build(text: str, env: dict[str, str] | None = None) -> None:
        project.write("add.mlir", ADD_MLIR.replace("@add", f"@{text}"))
        run = project.scons(on, env=env)
        assert run.returncode == 0 and run.compiled() == ["add.vmfb"], run.output
        assert f"@{text}".encode()[1:] in project.path("add.vmfb").read_bytes()

    build("first")
    [agent] = agents_of(cluster)
    build("second")
    assert agents_of(cluster) == [agent]  # the same process served both builds

    os.kill(agent, signal.SIGKILL)  # its socket stays behind
    build("third")
    [replacement] = agents_of(cluster)
    assert replacement != agent

    listed = subprocess.run([sys.executable, "-m", "iree_build", "agents"], capture_output=True, text=True)
    assert f"PID {replacement}  {cluster.address}  (ends after 600 s without work)" in listed.stdout
    stopped = subprocess.run([sys.executable, "-m", "iree_build", "agents", "--stop", "--address", cluster.address],
                             capture_output=True, text=True)
    assert stopped.stdout.splitlines() == [f"PID {replacement}  {cluster.address}  (stopped)"], stopped.stdout
    build("fourth", env={"IREE_CLUSTER_KEEPALIVE": "0"})  # the build connected itself
    assert agents_of(cluster) == []

    shared = project.root / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)  # others may enter: no agent there, the build connects itself
    build("open", env={"IREE_CLUSTER_AGENT_DIR": str(shared)})
    assert agents_of(cluster) == [] and list(shared.iterdir()) == []

    project.write("add.mlir", ADD_MLIR.replace("@add", "@bad"))  # a compile: the first use of the cluster
    bad = project.scons(on, env={"IREE_CLUSTER_KEEPALIVE": "soon"})
    errors = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(errors) == 1, bad.output
    assert "IREE_CLUSTER_KEEPALIVE='soon' is not a number of seconds" in errors[0]

    build("fifth", env={"IREE_CLUSTER_KEEPALIVE": "1"})
    [short] = agents_of(cluster)
    deadline = time.monotonic() + 30
    while agents_of(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agents_of(cluster) == [], f"agent {short} outlived its keepalive"


def test_a_handle_whose_agent_died_gets_a_new_one(cluster: LocalCluster) -> None:
    """A build holding a handle on an agent that then went away (killed, or idle past its
    keepalive in between) starts another and sends the request again."""
    from iree_build.cluster.agent import _is_agent, attach
    from iree_build.cluster.config import ClusterConfig

    handle = attach(ClusterConfig.from_values(cluster.address))
    first = handle.pid
    assert handle.offers()["iree-compiler"] == 2
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _is_agent(first) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.offers()["iree-compiler"] == 2
    assert handle.pid != first and _is_agent(handle.pid)


def test_a_cluster_result_holds_for_its_workers_hardware(cluster: LocalCluster) -> None:
    """A result obtained on the cluster is signed with the hardware of the workers that offer
    its device (read there by iree_build.hardware, as locally), through the agent or not."""
    from iree_build.cluster.agent import attach
    from iree_build.cluster.client import Cluster
    from iree_build.cluster.config import ClusterConfig
    from iree_build.cluster.device_tests import cluster_identity
    from iree_build.hardware import hardware_identity
    from iree_build.testing.emulation import lane_hardware

    config = ClusterConfig.from_values(cluster.address)
    own = Cluster(config)
    try:
        for conn in (own, attach(config)):
            assert cluster_identity(conn, "local-task") == \
                f"cluster {cluster.address}: {hardware_identity('local-task')}"
            assert cluster_identity(conn, "cuda") == f"cluster {cluster.address}: no worker offers cuda"
            # aarch64 code: the worker answers for the emulator it would run it under
            qemu = ("qemu-aarch64", "-L", "/usr/aarch64-linux-gnu")
            assert cluster_identity(conn, "local-task", "aarch64", qemu) == \
                f"cluster {cluster.address}: {lane_hardware('local-task', 'aarch64', qemu)}"
    finally:
        own.close()


def test_an_agent_cleans_up_after_itself_and_ends_when_its_code_changes(cluster: LocalCluster, tmp_path: Path) -> None:
    """An agent keeps its log bounded; when the package's code on disk changes (a newer
    agent would be started for it) it ends, leaving no socket, lock, log or info file."""
    import shutil

    import iree_build
    from iree_build.cluster import agent as agent_module

    copy = tmp_path / "code"
    shutil.copytree(Path(iree_build.__file__).parent, copy / "iree_build",
                    ignore=shutil.ignore_patterns("__pycache__"))
    folder = tmp_path / "agents"
    folder.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(copy), "IREE_CLUSTER_AGENT_DIR": str(folder)}
    attach = ("from iree_build.cluster.agent import attach; from iree_build.cluster.config import ClusterConfig; "
              f"print(attach(ClusterConfig.from_values({cluster.address!r})).pid)")
    got = subprocess.run([sys.executable, "-c", attach], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # not here: `-c` imports from the current folder first
    assert got.returncode == 0, got.stderr
    pid = int(got.stdout)
    (name,) = {p.name.split(".")[0] for p in folder.glob("agent-*")}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["authkey", *(f"{name}.{ext}" for ext in ("json", "lock", "log", "sock"))])

    log = folder / f"{name}.log"
    with open(log, "ab") as f:
        f.write(b"x" * (agent_module.LOG_LIMIT + 1))
    deadline = time.monotonic() + 10
    while log.exists() and log.stat().st_size > agent_module.LOG_LIMIT and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.stat().st_size <= agent_module.LOG_LIMIT, "the log was not rotated"
    assert (folder / f"{name}.log.1").stat().st_size > agent_module.LOG_LIMIT

    (copy / "iree_build" / "errors.py").write_text((copy / "iree_build" / "errors.py").read_text() + "\n# edited\n")
    deadline = time.monotonic() + 3 * agent_module.CODE_CHECK_S + 5
    while agent_module._is_agent(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not agent_module._is_agent(pid), "an agent for outdated code stayed"
    assert sorted(p.name for p in folder.iterdir()) == ["authkey"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_and_builds_nothing(project: Project) -> None:
    project.write("SConstruct", """\
        from iree_rules import *
        iree_module(name="add", src="add.mlir")
        iree_test(name="add_test", module="add", function="add", inputs=[[1.0] * 4, [1.0] * 4], expected=[[2.0] * 4])
        """)
    project.write("add.mlir", ADD_MLIR)
    address = f"tcp://127.0.0.1:{free_port()}"
    for args, env in ((["test", f"--iree-cluster={address}"], {}), (["test"], {"IREE_CLUSTER": address})):
        run = project.scons(*args, env=env)
        assert run.returncode == 2
        errors = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and f"cannot reach the Dask scheduler at {address}" in errors[0], run.stderr
        assert "Traceback" not in run.output
    # Found by the first action that needs the scheduler (loading the tool connects to
    # nothing): nothing built, no failure remembered.
    assert errors[0].startswith("scons: *** [add.vmfb] --iree-cluster: "), errors
    assert not [p.name for p in project.root.iterdir() if p.suffix in (".vmfb", ".failed")
                or p.name.endswith(".result.json")]

    project.write("SConstruct", f"""\
        from iree_rules import *
        env = IreeEnvironment(IREE_CLUSTER="{address}")  # the construction variable
        env.iree_module("add", "add.mlir")
        """)
    run = project.scons()
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(errors) == 1, run.stderr
    assert f"cannot reach the Dask scheduler at {address}" in errors[0]
    assert not project.path("add.vmfb").exists()

    runner = subprocess.run([sys.executable, "-m", "iree_build", "test", str(project.root), "--cluster", address],
                            capture_output=True, text=True, timeout=60)
    assert runner.returncode == 2
    assert runner.stderr.strip() == (f"python -m iree_build: error: cannot reach the Dask scheduler at {address} "
                                     "(Connection refused)")


def slow_mlir(n: int = 4) -> str:
    """A module that takes a second or two to compile: several matmuls of different shapes."""
    out = []
    for i in range(n):
        m = 24 + 8 * i
        t = f"tensor<{m}x{m}xf32>"
        out.append(f"""func.func @mm{i}(%a: {t}, %b: {t}) -> {t} {{
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : {t}
  %z = linalg.fill ins(%cst : f32) outs(%e : {t}) -> {t}
  %0 = linalg.matmul ins(%a, %b : {t}, {t}) outs(%z : {t}) -> {t}
  %1 = math.exp %0 : {t}
  return %1 : {t}
}}""")
    return "\n".join(out) + "\n"


def kill_the_compiling_worker(cluster: LocalCluster, client: Client, spared: set[str]) -> str:
    """SIGKILL the worker (by PID) the scheduler says is running the compile; its name."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        names = {addr: str(w["name"]) for addr, w in client.scheduler_info(n_workers=-1)["workers"].items()}
        for addr, keys in client.processing().items():
            name = names.get(addr, "")
            if name not in spared and any(str(k).startswith("iree-compiling-") for k in keys):
                time.sleep(0.3)  # the payload is unpacked and the compiler at work
                os.kill(cluster.pid(name), signal.SIGKILL)
                return name
        time.sleep(0.05)
    raise AssertionError("no worker started the compile")


def test_worker_killed_mid_compile_is_retried_once(cluster: LocalCluster, project: Project) -> None:
    """Last in this module: it kills the compile workers."""
    project.write("SConstruct", 'from iree_rules import *\niree_module(name="slow", src="slow.mlir")\n')
    project.write("slow.mlir", slow_mlir())
    command = [sys.executable, "-m", "SCons", "-Q", "-C", str(project.root), f"--iree-cluster={cluster.address}"]
    with Client(cluster.address, set_as_default=False) as client:
        build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = kill_the_compiling_worker(cluster, client, set())
            out, err = build.communicate(timeout=300)
        finally:
            build.kill()
        assert build.returncode == 0, out + err  # the other compile worker did it
        assert project.path("slow.vmfb").stat().st_size > 0

        cluster.start_worker("compile-c", {"iree-compiler": 1})
        cluster.wait_for(["compile-c"])
        project.path("slow.vmfb").unlink()
        build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            second = kill_the_compiling_worker(cluster, client, {first})
            kill_the_compiling_worker(cluster, client, {first, second})
            out, err = build.communicate(timeout=300)
        finally:
            build.kill()
    assert build.returncode == 2
    assert re.search(r"scons: \*\*\* \[slow\.vmfb\] IREE compile failed: compiling slow\.mlir: 2 Dask workers "
                     r"died running it \(the last was tcp://127\.0\.0\.1:\d+\); see that worker's log", err), err
    assert "Traceback" not in err
    assert sorted(p.name for p in project.root.iterdir() if "slow" in p.name) == ["slow.mlir"]


def make_certificates(folder: Path) -> tuple[str, str, str]:
    """A throw-away CA and one certificate for 127.0.0.1, signed by it (openssl)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=iree-build test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "node.pem", "-days", "1", "-extfile", "san.ext")
    return str(folder / "ca.pem"), str(folder / "node.pem"), str(folder / "node.key")


def test_a_tls_cluster_takes_the_certificates_from_the_environment(project: Project, tmp_path: Path) -> None:
    (tmp_path / "dask").mkdir()
    tls = make_certificates(tmp_path)
    local = LocalCluster(tmp_path / "dask", tls=tls)
    try:
        local.start_scheduler()
        assert local.address.startswith("tls://127.0.0.1:")
        local.start_worker("tls-compile", {"iree-compiler": 1})
        local.wait_for(["tls-compile"])
        project.write("SConstruct", 'from iree_rules import *\niree_module(name="add", src="add.mlir")\n')
        project.write("add.mlir", ADD_MLIR)
        plain = project.scons(f"--iree-cluster={local.address}")  # no certificates: refused
        assert plain.returncode == 2
        assert (f"[add.vmfb] --iree-cluster: {local.address} is a TLS scheduler: set IREE_CLUSTER_TLS_CA_FILE, "
                "IREE_CLUSTER_TLS_CERT and IREE_CLUSTER_TLS_KEY") in plain.stderr
        assert not project.path("add.vmfb").exists()
        env = dict(zip(("IREE_CLUSTER_TLS_CA_FILE", "IREE_CLUSTER_TLS_CERT", "IREE_CLUSTER_TLS_KEY"), tls, strict=True))
        run = project.scons(f"--iree-cluster={local.address}", env=env)
        assert run.returncode == 0, run.output
        assert run.compiled() == ["add.vmfb"] and project.path("add.vmfb").stat().st_size > 0
    finally:
        local.stop()


def test_work_no_worker_can_take_any_more_fails(cluster: LocalCluster, monkeypatch) -> None:
    """Last: kills the device worker. The scheduler would keep the task forever."""
    import threading

    from iree_build.cluster import client as cluster_client
    from iree_build.cluster.config import ClusterConfig, ClusterError

    monkeypatch.setattr(cluster_client, "NO_WORKER_GRACE", 1.0)  # 10 s on real clusters
    connected = cluster_client.Cluster(ClusterConfig.from_values(cluster.address))
    failure: list[str] = []

    def wait() -> None:
        try:
            connected.run(time.sleep, 60, resource="local-task", label="sleeping a minute")
        except ClusterError as e:
            failure.append(e.message)

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        deadline = time.monotonic() + 60
        while not any(connected.client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(cluster.pid("device"), signal.SIGKILL)
        waiter.join(timeout=60)
    finally:
        connected.close()
    assert failure == [f"no worker offering 'local-task' is left in the Dask cluster at {cluster.address}; "
                       "sleeping a minute cannot finish"]
