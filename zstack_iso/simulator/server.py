"""HTTP server of the simulator: stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, optional TLS.

The handler reads one request, applies the configured latency and any matching fault, hands the request to
ZStackResponses (or the control API) and writes the whole answer in one send.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import unquote_plus, urlsplit

from .control import ControlApi, Journal
from .faults import FaultRegistry
from .models import ZStackNode
from .process import SimulatorProcess
from .responses import Reply, Request, ZStackResponses
from .seed import load_seed_file, normalize_seed

CONTROL_PREFIX = "/_simulator"
MAX_BODY_BYTES = 16 * 1024 * 1024
_SESSION_IN_PATH = re.compile(r"(/accounts/sessions/)[^/?\s]+")
_QUERY_PARAMETER = re.compile(r"([?&])([^=&#\s]*)=([^&#\s]*)")
# Query parameters that carry a session: the Python SDK (zssdk.py) sends sessionId= on every GET/DELETE, and
# sessionUuid= for LogOut and ValidateSession (§14). The node ignores them, but they are credentials.
_SESSION_PARAMETERS = frozenset({"sessionid", "sessionuuid"})


def _redact_parameter(match: re.Match[str]) -> str:
    if unquote_plus(match.group(2)).strip().lower() in _SESSION_PARAMETERS:
        return f"{match.group(1)}{match.group(2)}=***"
    return match.group(0)


def redact(text: str) -> str:
    """A path (with its query string) or a log line, without the session UUIDs in it: in /accounts/sessions/<x>
    and in sessionId= / sessionUuid= query parameters (any case, percent-encoded names too)."""
    return _QUERY_PARAMETER.sub(_redact_parameter, _SESSION_IN_PATH.sub(r"\1***", text))


class _BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZStackSimulator"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # http.server's own messages (log_error on a bad request line...) quote the raw request line
        if self.server.sim.log_requests:
            sys.stderr.write(f"{self.address_string()} - {redact(format % args)}\n")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadRequest("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if n < 0 or n > MAX_BODY_BYTES:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(n)

    def _handle(self) -> None:
        sim = self.server.sim
        if sim.stopping.is_set():
            self._drop()
            return
        started = time.monotonic()
        method = self.command
        split = urlsplit(self.path)
        path, query = split.path or "/", split.query
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self.close_connection = True
            self._send(400, str(exc))
            return
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            status, payload = sim.control.handle(method, path, body)
            self._send(status, payload)
            return
        path_qs = path + ("?" + query if query else "")
        journal_path = redact(path_qs)
        latency = sim.node.config.latencyMs
        if latency > 0 and sim.stopping.wait(latency / 1000.0):
            return
        fault = sim.faults.take(method, path_qs)
        if fault and fault.delays:
            if sim.stopping.wait(fault.delay_ms / 1000.0):
                return
            fault = None
        if fault and fault.drops_connection:
            # Journal first, answer second: once a client has its answer, the journal shows the request.
            sim.journal.record(method, journal_path, 0, _ms(started), login=False, job=False)
            self._drop()  # nothing executed
            return
        if fault and fault.answers_instead:
            sim.journal.record(method, journal_path, fault.status, _ms(started), login=False, job=False)
            self._send(fault.status, fault.body if fault.body is not None else "")
            return
        host = self.headers.get("Host") or f"{sim.host}:{sim.port}"
        request = Request(method, path, query, self.headers, body, f"{sim.scheme}://{host}")
        try:
            reply = sim.responses.handle(request, fault)
        except Exception as exc:  # §3.7 catch-all: 500 with the message, never a traceback in the body
            traceback.print_exc(file=sys.stderr)
            reply = Reply(500, str(exc) or exc.__class__.__name__)
        if fault and fault.drops_answer:
            sim.journal.record(method, journal_path, 0, _ms(started), login=reply.login, job=reply.job is not None)
            self._drop()  # the request ran (and its job was accepted); the answer is lost
            return
        sim.journal.record(
            method, journal_path, reply.status, _ms(started), login=reply.login, job=reply.job is not None
        )
        self._send(reply.status, reply.body)
        if sim.log_requests:
            sys.stderr.write(f"{method} {journal_path} {reply.status} {_ms(started):.1f}ms\n")

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, body: dict[str, Any] | list | str | None) -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            ctype = "application/json;charset=utf-8"
        else:
            data = (body or "").encode("utf-8")
            ctype = "text/plain;charset=utf-8"
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        head = [
            f"HTTP/1.1 {status} {reason}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Server: {self.server_version}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(data)}",
        ]
        if self.close_connection:
            head.append("Connection: close")
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            payload += data
        try:
            self.wfile.write(payload)  # one write: no Nagle / delayed-ACK stall between head and body
        except OSError:
            self.close_connection = True


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    sim: Simulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open keep-alive connection: a stopped simulator serves nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def server_bind(self) -> None:
        # skip HTTPServer's getfqdn(): a reverse DNS lookup can stall start-up
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, BrokenPipeError)):
            return  # a client that went away or spoke plain HTTP to the TLS port
        super().handle_error(request, client_address)


class Simulator:
    """A running simulator: `url` (base URL, the ZStack API is at url + "/zstack/v1") and `node` (the model)."""

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
        session_timeout_seconds: int = 7200,
        log_requests: bool = False,
        strict_attach: bool = False,
    ) -> None:
        seed_records = normalize_seed(seed) if isinstance(seed, dict) else load_seed_file(seed)
        self.node = ZStackNode(
            seed_records,
            job_seconds=job_seconds,
            latency_ms=latency_ms,
            session_timeout_seconds=session_timeout_seconds,
            state_file=state_file,
            strict_attach=strict_attach,
        )
        self.journal = Journal()
        self.faults = FaultRegistry()
        self.control = ControlApi(self.node, self.journal, self.faults)
        self.responses = ZStackResponses(self.node)
        self.log_requests = log_requests
        self.stopping = threading.Event()
        self.scheme = "https" if tls_cert else "http"
        self._server = _Server((host, port), _Handler, bind_and_activate=True)
        self._server.sim = self
        if tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
            # the handshake happens in the connection's own thread, not in the accept loop
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.host, self.port = self._server.server_address[:2]
        url_host = f"[{self.host}]" if ":" in str(self.host) else self.host
        self.url = f"{self.scheme}://{url_host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def api(self) -> str:
        return self.url + "/zstack/v1"

    def start(self) -> Simulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="zstack-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.node.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@overload
def run_simulator(*args: Any, process: Literal[False] = False, **kwargs: Any) -> Simulator: ...
@overload
def run_simulator(*args: Any, process: Literal[True], **kwargs: Any) -> SimulatorProcess: ...


def run_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: str | Path | dict[str, Any] | None = None,
    state_file: str | Path | None = None,
    job_seconds: float = 1.0,
    latency_ms: float = 0.0,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    *,
    process: bool = False,
    **kwargs: Any,
) -> Simulator | SimulatorProcess:
    """A simulator (port 0: a free one), to use in a `with` block: it starts on entry and stops on exit.

    `seed` is a seed file path or a seed document (dict); None is the default inventory. Extra keyword
    arguments: session_timeout_seconds, log_requests, strict_attach.

    By default it serves from a thread of this process, and `node` is its domain model. With `process=True` it
    is `python -m zstack_iso.simulator` in a process of its own (a `SimulatorProcess`: `url`, `pid`, `kill()`,
    no `node`), so that a client measured against it does not share this interpreter; `log_file` then names
    where its output goes (by default a temporary file).
    """
    if process:
        return SimulatorProcess(host, port, seed, state_file, job_seconds, latency_ms, tls_cert, tls_key, **kwargs)
    return Simulator(host, port, seed, state_file, job_seconds, latency_ms, tls_cert, tls_key, **kwargs)
