"""api/http.py: the GET it prepares is the one `Session.get` prepares, and the body it reads in one call is
what `response.content` gives (gzip, deflate, chunked), or the same error (a cut-off body), over real HTTP
from a small local server."""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, Tuple

import pytest
import requests

from tap_wootric.api import http

BASE = "http://127.0.0.1:8765/v1"


def session() -> requests.Session:
    made = requests.Session()
    made.headers["User-Agent"] = "tap-wootric/test"
    made.headers["Accept"] = "application/json"
    made.trust_env = False
    return made


@pytest.mark.parametrize("url, params", [
    (f"{BASE}/responses", {"page": 2, "per_page": 50, "sort_key": "created_at", "sort_order": "asc",
                           "created[gte]": 1700000000, "created[lt]": 1700086400}),
    (f"{BASE}/responses", {}),
    (f"{BASE}/end_users", {"email": "a b+c@example.com", "q": "é/ü?&=%#~_.-", "skip": None}),
    ("https://cxi-api.wootric.com/v1/imports/41", {"page": "3"}),
    ("https://app.wootric.eu/api/v2/email_stats", {"date": "2026-12-01", "ids": [1, 2]}),  # a list: requests' way
    ("https://app.wootric.eu/api/v1/x?lang=de", {"page": 1}),  # a query of its own: requests' way
    ("https://user:secret@api.example.com/v1/x", {"page": 1}),  # credentials: requests' way
    ("https://API.Example.com/v1/ä b", {"flag": True, "ratio": 0.5}),
])
def test_the_prepared_get_is_the_one_session_get_prepares(url, params):
    made = session()
    made.cookies.set("AWSALB", "abc", domain="api.example.com")
    headers = {"Authorization": "Bearer token-1"}
    ours = http.prepare_get(made, url, params, headers)
    theirs = made.prepare_request(requests.Request("GET", url, params=params, headers=headers))
    assert ours.url == theirs.url
    assert ours.method == theirs.method
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.body == theirs.body
    assert ours.hooks == theirs.hooks


def test_the_query_is_built_only_from_plain_values():
    assert http.query_string({"a": 1, "b": "x y", "c": None}) == "a=1&b=x+y"
    assert http.query_string({"a": True}) is None
    assert http.query_string({"a": [1]}) is None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: Dict[str, Tuple[Dict[str, str], bytes, bool]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        headers, body, truncated = self.bodies[self.path.split("?")[0]]
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        chunked = headers.get("Transfer-Encoding") == "chunked"
        if not chunked:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if chunked:
            for start in range(0, len(body), 1000):
                piece = body[start:start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if not truncated:
                self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body[: len(body) // 2] if truncated else body)
        if truncated:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


PAGE = (b'[' + b','.join(b'{"id": %d, "text": "%s"}' % (n, "\u00e9".encode() * n) for n in range(300)) + b']')
JSON = {"Content-Type": "application/json"}
_Handler.bodies.update({
    "/plain": (JSON, PAGE, False),
    "/gzip": ({**JSON, "Content-Encoding": "gzip"}, gzip.compress(PAGE), False),
    "/deflate": ({**JSON, "Content-Encoding": "deflate"}, zlib.compress(PAGE), False),
    "/chunked": ({**JSON, "Transfer-Encoding": "chunked"}, PAGE, False),
    "/empty": (JSON, b"", False),
    "/corrupt-gzip": ({**JSON, "Content-Encoding": "gzip"}, b"not gzip at all", False),
    "/truncated": (JSON, PAGE, True),
    "/truncated-chunked": ({**JSON, "Transfer-Encoding": "chunked"}, PAGE, True),
})


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/deflate", "/chunked", "/empty"])
def test_the_body_read_in_one_call_is_what_content_gives(server, path):
    made = session()
    theirs = made.get(server + path, params={"page": 1})
    expected = theirs.content
    response = http.get(made, server + path, {"page": 1}, {}, timeout=10)
    assert response.status_code == 200
    assert response.content == expected == (b"" if path == "/empty" else PAGE)
    assert response.text == theirs.text
    # The connection went back to the pool: the next request reuses it.
    again = http.get(made, server + path, {"page": 2}, {}, timeout=10)
    assert again.content == expected


@pytest.mark.parametrize("path, error", [
    ("/truncated", requests.exceptions.ChunkedEncodingError),
    ("/truncated-chunked", requests.exceptions.ChunkedEncodingError),
    ("/corrupt-gzip", requests.exceptions.ContentDecodingError),
])
def test_a_broken_body_raises_what_content_raises(server, path, error):
    with pytest.raises(error):
        session().get(server + path)
    with pytest.raises(error):
        http.get(session(), server + path, {}, {}, timeout=10)
