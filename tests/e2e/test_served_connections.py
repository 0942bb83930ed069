"""``livecoupon serve`` over raw sockets: answers written a turn at a time (``api/serving.py``) still reach
the client whole and in order, with keep-alive, pipelining, HEAD and ``Connection: close``."""

from __future__ import annotations

import json
import socket
from collections.abc import Collection, Iterator

import pytest

from support.screenshots import EXAMPLE
from support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(EXAMPLE, tmp_path_factory.mktemp("served") / "served.db") as s:
        yield s


def request(method: str, path: str, *, close: bool = False) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"{'connection: close' if close else 'connection: keep-alive'}\r\n\r\n").encode()


def read_answers(sock: socket.socket, head_only: Collection[int] = ()) -> list[tuple[int, dict[str, str], bytes]]:
    """Every answer until the server closes the connection; answers numbered in ``head_only`` have no body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    answers = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = 0 if len(answers) in head_only else int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    return answers


def test_pipelined_answers_arrive_whole_and_in_order_and_close_sends_the_last(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request("GET", "/health") + request("GET", "/v1/nowhere") + request("GET", "/health", close=True))
        answers = read_answers(sock)
    assert [status for status, _, _ in answers] == [200, 404, 200]
    assert json.loads(answers[0][2]) == json.loads(answers[2][2])
    assert answers[2][1]["connection"] == "close"


def test_a_head_answer_has_its_headers_and_no_body(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request("HEAD", "/web/viewer.html") + request("GET", "/web/viewer.html", close=True))
        answers = read_answers(sock, head_only={0})
    (head_status, head_headers, head_body), (status, headers, body) = answers
    assert head_status == status == 200
    assert head_body == b""
    assert int(head_headers["content-length"]) == len(body) > 0
    assert "<html" in body.decode()


def test_many_answers_on_one_connection_one_request_at_a_time(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for _ in range(50):
            sock.sendall(request("GET", "/health"))
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            body = reader.read(int(headers["content-length"]))
            assert status.startswith(b"HTTP/1.1 200") and json.loads(body)
