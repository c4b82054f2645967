"""The simulator in a process of its own: `python -m zstack_iso.simulator`, started, waited for and stopped.

`run_simulator(..., process=True)` and `python -m zstack_iso.simulator --background` both start it here. The
child writes its output to a log file; it is ready once its first line there says `ZStack simulator
listening on <url>`, which is how the caller learns the port when it asked for port 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The first line `python -m zstack_iso.simulator` prints, followed by the URL.
READY = "ZStack simulator listening on "
# The folder that holds the zstack_iso package this process runs: the child runs the same code.
_CODE_ROOT = Path(__file__).resolve().parents[2]


class SimulatorStartError(RuntimeError):
    """The simulator's process ended, or did not listen in time, before it was ready; carries its output."""


def cli_args(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: str | Path | None = None,
    state_file: str | Path | None = None,
    job_seconds: float = 1.0,
    latency_ms: float = 0.0,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    *,
    session_timeout_seconds: int = 7200,
    log_requests: bool = False,
    strict_attach: bool = False,
    pid_file: str | Path | None = None,
) -> list[str]:
    """The options of `python -m zstack_iso.simulator` that mean what `run_simulator`'s arguments mean."""
    args = ["--host", host, "--port", str(port), "--job-seconds", f"{job_seconds:g}", "--latency-ms", f"{latency_ms:g}"]
    args += ["--session-timeout", str(session_timeout_seconds)]
    for option, value in (
        ("--seed", seed),
        ("--state", state_file),
        ("--tls-cert", tls_cert),
        ("--tls-key", tls_key),
        ("--pid-file", pid_file),
    ):
        if value is not None:
            args += [option, str(value)]
    if strict_attach:
        args.append("--strict-attach")
    if not log_requests:
        args.append("--quiet")
    return args


class SimulatorProcess:
    """A simulator in its own process, with the options of `run_simulator` (which builds it for process=True).

    `seed` may be a dict (written to a temporary file for the child). The child's stdout and stderr go to
    `log_file`, by default a temporary file removed at `stop()`. `detach` starts it in a session of its own,
    for a caller that leaves it running (`--background`). Use it in a `with` block, or `start()` and `stop()`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: str | Path | dict[str, Any] | None = None,
        state_file: str | Path | None = None,
        job_seconds: float = 1.0,
        latency_ms: float = 0.0,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        *,
        log_file: str | Path | None = None,
        detach: bool = False,
        start_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        if detach and log_file is None:
            raise ValueError("a detached simulator needs a log_file: its temporary one would go with this process")
        # The temporary folder (a dict seed, the default log) lives until stop().
        self._tmp = tempfile.TemporaryDirectory(prefix="zstack-simulator-")
        if isinstance(seed, dict):
            seed_file = Path(self._tmp.name) / "seed.json"
            seed_file.write_text(json.dumps(seed), encoding="utf-8")
            seed = seed_file
        self.args = cli_args(host, port, seed, state_file, job_seconds, latency_ms, tls_cert, tls_key, **options)
        self.log_file = Path(log_file) if log_file is not None else Path(self._tmp.name) / "simulator.log"
        self.detach = detach
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return self.url + "/zstack/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the simulator's process is not started")
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> SimulatorProcess:
        """Start the process and wait until it listens; raise SimulatorStartError with its output if it does not."""
        if self._process is not None:
            raise RuntimeError("the simulator's process is already started")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_CODE_ROOT), env.get("PYTHONPATH")) if p)
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "zstack_iso.simulator", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.detach,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            output = self._output(offset)
            first = output.splitlines()[0] if output.strip() else ""
            if first.startswith(READY):
                self.url = first[len(READY) :].strip()
                return self
            code = self._process.poll()
            if code is not None:
                self._process = None
                said = output.strip() or "nothing"
                raise SimulatorStartError(f"the simulator exited (code {code}) before it listened; it said: {said}")
            time.sleep(0.02)
        self.stop()
        said = self._output(offset).strip() or "nothing"
        raise SimulatorStartError(f"the simulator did not listen within {self.start_timeout:g} s; it said: {said}")

    def _output(self, offset: int) -> str:
        with open(self.log_file, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (the simulator stops cleanly and removes its pid file), then SIGKILL after `grace` seconds."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(grace)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        self._tmp.cleanup()

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would: no chance to finish a write."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
