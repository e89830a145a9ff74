"""A ``kura-server`` for the benchmarks: started with ``quickstart`` on loopback.

The server runs as a child process (TLS on both listeners, SQLite, vaults in its
data directory), on ports the OS picks; its first stdout line is the quickstart
JSON (URLs, CA certificate, operator token, a registration token). What the
benchmarks read from it besides: its CPU time (``/proc/PID/stat``, user +
system) and its peak resident set (``VmHWM`` in ``/proc/PID/status``).

Only the Python standard library is used.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(Exception):
    pass


class KuraServer:
    """One ``kura-server quickstart --json`` child process."""

    def __init__(self, exe: str, data: Path, logs: Path) -> None:
        self.exe = exe
        self.data = data
        self.logs = logs
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._drain: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout: float = 120.0) -> dict:
        """Starts the server and returns the quickstart JSON once it listens."""
        self.data.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        # Default logging (info): a few lines per backup, none per request.
        env = dict(os.environ)
        err = open(self.logs / "kura-server.err", "wb")
        self.proc = subprocess.Popen(
            [self.exe, "quickstart", "--json", "--data", str(self.data),
             "--customer-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env)
        err.close()
        line = self._first_line(timeout)
        try:
            self.info = json.loads(line)
        except ValueError as e:
            self.stop()
            raise ServerError(f"kura-server quickstart printed no JSON line ({e}): {line!r}; "
                              f"see {self.logs / 'kura-server.err'}") from e
        # Anything printed later goes to a file, so a full pipe can never block the server.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return self.info

    def _first_line(self, timeout: float) -> str:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise ServerError(f"kura-server did not start (exit {self.proc.returncode}); "
                                  f"see {self.logs / 'kura-server.err'}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    continue
                buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace")

    def _drain_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        with open(self.logs / "kura-server.out", "ab") as out:
            for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
                out.write(chunk)

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it hangs."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -- what it costs -----------------------------------------------------
    def _proc_file(self, name: str) -> str:
        assert self.proc
        return Path(f"/proc/{self.proc.pid}/{name}").read_text()

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server so far (all its threads)."""
        fields = self._proc_file("stat").rsplit(")", 1)[1].split()
        # After the command name: state is field 3, utime 14 and stime 15 (1-based).
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def _status_kib(self, key: str) -> int:
        for line in self._proc_file("status").splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def peak_rss_kib(self) -> int:
        """The server's peak resident set so far (VmHWM)."""
        return self._status_kib("VmHWM")

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    # -- operator and agent set-up (not timed) ------------------------------
    def operator(self, *args: str) -> dict:
        """``kura-server tenant ...`` against this server's management listener."""
        cmd = [self.exe, "tenant", *args, "--json",
               "--management-url", self.info["management_url"],
               "--ca-cert", self.info["ca_cert"],
               "--operator-token", self.info["operator_token"]]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise ServerError(f"kura-server tenant {args[0]} failed: {out.stderr.strip()[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def registration_token(self, tenant: str) -> str:
        return self.operator("registration-token", tenant)["registration_token"]

    def register(self, kura: str, env: dict[str, str], token: str, name: str) -> dict:
        """``kura register`` for one machine; env must hold its own KURA_CONFIG."""
        cmd = [kura, "--json", "register", "--server", self.info["customer_url"],
               "--token", token, "--ca-cert", self.info["ca_cert"], "--name", name]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if out.returncode != 0:
            raise ServerError(f"kura register {name} failed: {out.stderr.strip()[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
