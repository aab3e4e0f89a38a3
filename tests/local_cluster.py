"""Ray nodes on this machine for tests and bench/chaos.py: a head and workers, each its own `ray start`."""

import os
import signal
import socket
import subprocess
import sys

import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`ray start` processes on 127.0.0.1; stopped by killing exactly the processes they started."""

    def __init__(self, workers: int, tmp):
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.before = {p.pid for p in psutil.process_iter()}
        self._start(["--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false",
                     f"--temp-dir={tmp}"])
        self.workers = []
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> int:
        """One more worker node with 1 CPU; returns its raylet's pid."""
        known = self._raylets()
        self._start([f"--address={self.address}", "--num-cpus=1"])
        self.workers.append(next(iter(self._raylets() - known)))
        return self.workers[-1]

    def _start(self, args):
        subprocess.run(["ray", "start", *args, "--disable-usage-stats"], env=self.env, check=True,
                       capture_output=True, timeout=120, executable=os.path.join(os.path.dirname(sys.executable), "ray"))

    def _raylets(self) -> set[int]:
        return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "raylet" and p.pid not in self.before}

    def node_of(self, raylet_pid: int) -> str:
        cmd = psutil.Process(raylet_pid).cmdline()
        return next(a.split("=", 1)[1] for a in cmd if a.startswith("--node_id="))

    def kill_worker(self, raylet_pid: int) -> None:
        """What a dead machine looks like: its raylet and everything under it, gone at once."""
        proc = psutil.Process(raylet_pid)
        _kill([proc, *proc.children(recursive=True)])
        self.workers.remove(raylet_pid)

    def stop(self) -> None:
        """Ray's daemons are reparented away from `ray start`: kill every Ray process born after this cluster."""
        _kill([p for p in psutil.process_iter() if p.pid not in self.before and p.pid != os.getpid()
               and "ray" in " ".join(_cmdline(p)).lower()])


def _kill(procs: list) -> None:
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=15)


def _cmdline(p):
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []
