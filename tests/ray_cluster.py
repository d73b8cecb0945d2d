"""A real Ray cluster on this machine, for tests/test_backends.py and benchmarks/ray_scaling.py:
`ray start --head` and `ray start --address=...` worker nodes as separate processes (1 CPU each),
and the /proc helpers that find and end the processes they start."""
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every live process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields[0] != "Z":
            found.append((int(stat.parent.name), int(fields[1]), command))
    return found


def descendants(root: int) -> list[int]:
    """Every live process started, directly or not, by process `root`."""
    children: dict[int, list[int]] = {}
    for pid, parent, _ in processes():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """A Ray cluster on this machine: a head node and worker nodes, each `ray start --block` (1 CPU)
    in its own session, with token authentication (a fresh token, not ~/.ray's) and fast node-death
    detection; node logs go to `logs`; `stop` ends every process they started."""

    def __init__(self, logs: Path):
        self.temp = tempfile.mkdtemp(prefix="nmray", dir="/tmp")  # Ray's socket paths must stay short
        self.logs, self.port, self.nodes = logs, free_port(), []
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                    "RAY_health_check_initial_delay_ms": "0", "RAY_USAGE_STATS_ENABLED": "0"}

    def start(self, *args: str) -> None:
        """Starts a node (`ray start ARGS --block`); `ready` waits for it."""
        log = self.logs / f"ray_node{len(self.nodes)}.log"
        command = [str(Path(sys.executable).parent / "ray"), "start", *args, "--block", "--num-cpus", "1",
                   "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
        self.nodes.append((subprocess.Popen(command, env=self.env, start_new_session=True, stdout=log.open("w"),
                                            stderr=subprocess.STDOUT), log))

    def start_head(self) -> None:
        self.start("--head", "--port", str(self.port), "--temp-dir", self.temp, "--include-dashboard=false",
                   "--ray-client-server-port", str(free_port()))

    def add_worker(self) -> None:
        self.start("--address", self.address)

    def ready(self, node: int, timeout: float = 45.0) -> None:
        """Waits until node `node` (0: the head, in start order) has started."""
        process, log = self.nodes[node]
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    def raylet(self, node: int) -> int:
        """The pid of node `node`'s raylet."""
        return next(pid for pid in descendants(self.nodes[node][0].pid)
                    if "raylet/raylet " in command(pid))

    def training(self, node: int) -> list[int]:
        """The node's Ray worker processes executing a run (their title is ray::<function>)."""
        raylet = self.raylet(node)
        return [pid for pid, parent, command in processes()
                if parent == raylet and command.startswith("ray::ray_task")]

    def stop(self) -> None:
        """Stops every node (SIGTERM, then SIGKILL of whatever they started that is left)."""
        started = [pid for process, _ in self.nodes for pid in (process.pid, *descendants(process.pid))]
        for process, _ in self.nodes:
            process.terminate()
        for process, _ in self.nodes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp, ignore_errors=True)


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
