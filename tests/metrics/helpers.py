"""Statsd server stand-ins and helpers shared by the tests of graywsgi/metrics/."""

from __future__ import annotations

import re
import socket
import threading
import typing as t
from pathlib import Path

from graywsgi import CanarySplit, Extraction
from tests.conftest import RecordingApp

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


ROOT = Path(__file__).resolve().parents[2]
MS = r"\d+\.\d{3}"  # a timer value as sent: milliseconds, three decimals
GRAY = {"X-Gray-ID": "user-11", "X-Version": "1.5.0"}  # user-11 hashes into the 15 % canary
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class UdpServer:
    """A statsd server stand-in: a UDP socket that collects datagrams."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.port: int = self.sock.getsockname()[1]

    def datagram(self) -> str:
        return self.sock.recv(65535).decode("ascii")

    def datagrams(self, count: int) -> list[str]:
        return [self.datagram() for _ in range(count)]

    def datagram_from(self) -> tuple[str, int]:
        data, address = self.sock.recvfrom(65535)
        return data.decode("ascii"), address[1]

    def nothing_more(self, wait: float = 0.05) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recv(65535)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False


class StreamServer:
    """A TCP (or Unix) listener that collects newline-separated lines."""

    def __init__(self, family: int = socket.AF_INET, path: str | None = None, read: bool = True) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if not read:  # a peer that never reads: keep its receive buffer small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        if family == socket.AF_INET:
            self.sock.bind(("127.0.0.1", 0))
            self.port: int = self.sock.getsockname()[1]
        else:
            self.sock.bind(path)
            self.port = 0
        self.sock.listen(8)
        self.lines: list[str] = []
        self.connections: list[socket.socket] = []
        self._cond = threading.Condition()
        self._read = read
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections.append(conn)
            if self._read:
                threading.Thread(target=self._reader, args=(conn,), daemon=True).start()

    def _reader(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            with self._cond:
                self.lines.extend(line.decode("ascii") for line in complete if line)
                self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.lines) >= count, timeout)
            return list(self.lines)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


def split_chain(**options: t.Any) -> WSGIApplication:
    return Extraction(CanarySplit(RecordingApp(), percent=15), **options)


def assert_lines(datagram: str, *patterns: str) -> None:
    """Each line of ``datagram`` matches its pattern; ``{ms}`` stands for the timer value."""
    lines = datagram.split("\n")
    assert len(lines) == len(patterns), datagram
    for line, pattern in zip(lines, patterns):
        regex = re.escape(pattern).replace(re.escape("{ms}"), MS)
        assert re.fullmatch(regex, line), f"{line!r} does not match {pattern!r}"


def failing_app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    raise RuntimeError("boom")


def failing_body(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    raise RuntimeError("boom while streaming")
