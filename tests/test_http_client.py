"""The outbound HTTP client against real sockets on loopback: a scripted server writes the answers
byte for byte (keep-alive, close, chunked, 1xx, HTTP/1.0, gzip, garbage), and a TLS server with a
certificate made here checks verification."""

from __future__ import annotations

import datetime
import gzip
import ipaddress
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from esb.http_client import CallFailed, CallTimeout, HttpClient, basic_authorization


class ScriptedServer:
    """Accepts connections; for each request read, sends the next answer of `answers` (bytes, or a
    callable taking the connection). Records each request's head and body and each connection."""

    def __init__(self, answers, tls: ssl.SSLContext | None = None):
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._tls = tls
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            reader = conn.makefile("rb")
            while self.answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append((head, reader.read(length)))
                answer = self.answers.pop(0)
                if callable(answer):
                    answer(conn)
                else:
                    conn.sendall(answer)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._listener.close()


def then_close(data: bytes):
    """An answer after which the server closes the connection."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_RDWR)
    return answer


OK = b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n" + b'{"id":"x"}'


def client(server: ScriptedServer, scheme: str = "http", **options) -> HttpClient:
    return HttpClient(f"{scheme}://127.0.0.1:{server.port}", timeout=options.pop("timeout", 2.0), **options)


def test_calls_reuse_one_connection_and_send_host_length_and_headers():
    server = ScriptedServer([OK, OK, OK])
    http = client(server, headers={"X-API-Key": "k"})
    answers = [http.request("POST", "/orders?x=1", b'{"a": 1}', {"Content-Type": "application/json"})
               for _ in range(3)]
    assert [a.status for a in answers] == [201, 201, 201] and answers[0].body == b'{"id":"x"}'
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /orders?x=1 HTTP/1.1\r\n") and body == b'{"a": 1}'
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in head
    assert b"Content-Length: 8\r\n" in head and b"X-API-Key: k\r\n" in head
    assert b"Content-Type: application/json\r\n" in head


def test_an_answer_saying_connection_close_makes_the_next_call_reconnect():
    closing = b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    server = ScriptedServer([closing, OK])
    http = client(server)
    assert http.request("POST", "/", b"", {}).status == 201
    assert http.request("POST", "/", b"", {}).status == 201
    assert server.connections == 2


def test_an_idle_connection_the_server_closed_is_replaced_before_the_call():
    server = ScriptedServer([then_close(OK), OK])
    http = client(server)
    assert http.request("POST", "/", b"1", {}).status == 201
    time.sleep(0.1)  # the server's close has arrived
    assert http.request("POST", "/", b"2", {}).status == 201
    assert server.connections == 2 and [body for _, body in server.requests] == [b"1", b"2"]


def test_chunked_gzip_and_interim_answers_are_read_whole():
    payload = gzip.compress(b'{"data": {"id": "WMS-77"}}')
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
               + f"{len(payload[:5]):x};ext=1\r\n".encode() + payload[:5] + b"\r\n"
               + f"{len(payload[5:]):x}\r\n".encode() + payload[5:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = ScriptedServer([chunked, OK])
    http = client(server)
    assert http.request("POST", "/", b"", {}).body == b'{"data": {"id": "WMS-77"}}'
    assert http.request("POST", "/", b"", {}).status == 201  # the chunked answer was read to its end
    assert server.connections == 1


def test_an_http_1_0_answer_without_length_is_read_to_the_close():
    answer = (b"HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
              b"broken \xc3\xa9")
    server = ScriptedServer([then_close(answer), OK])
    http = client(server)
    answer = http.request("POST", "/", b"", {})
    assert (answer.status, answer.text) == (500, "broken é")
    assert http.request("POST", "/", b"", {}).status == 201 and server.connections == 2


def test_a_large_body_is_sent_whole():
    body = bytes(range(256)) * 1024
    server = ScriptedServer([OK])
    client(server).request("PUT", "/big", body, {})
    assert server.requests[0][1] == body


def test_no_answer_within_the_timeout_is_a_call_timeout():
    server = ScriptedServer([lambda conn: time.sleep(1.0)])
    with pytest.raises(CallTimeout, match="no answer within 0.3 s"):
        client(server, timeout=0.3).request("POST", "/", b"", {})


def test_a_refused_connection_a_close_without_answer_and_garbage_are_call_failures():
    with pytest.raises(CallFailed, match="ConnectionError: cannot connect to 127.0.0.1:9"):
        HttpClient("http://127.0.0.1:9", timeout=1.0).request("POST", "/", b"", {})
    server = ScriptedServer([then_close(b""), then_close(b"SMTP ready\r\n\r\n"),
                             then_close(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")])
    http = client(server)
    with pytest.raises(CallFailed, match="closed the connection without answering"):
        http.request("POST", "/", b"", {})
    with pytest.raises(CallFailed, match="not an HTTP answer"):
        http.request("POST", "/", b"", {})
    with pytest.raises(CallFailed, match="ended after 5 of 9 bytes"):
        http.request("POST", "/", b"", {})


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent():
    server = ScriptedServer([OK])
    with pytest.raises(ValueError, match="X-Correlation-Id"):
        client(server).request("POST", "/", b"", {"X-Correlation-Id": "PO-1\r\nX-Evil: 1"})
    assert server.requests == []


def test_basic_authorization_is_encoded_as_requests_does():
    assert basic_authorization("u", "p") == "Basic dTpw"


def test_a_proxy_in_the_environment_is_noticed(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "wms.internal")
    assert HttpClient.proxied("http://erp.example/api")
    assert not HttpClient.proxied("http://wms.internal/api")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esb test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem"


def tls_server(certificate, answers) -> ScriptedServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return ScriptedServer(answers, tls=context)


def test_tls_is_verified_against_the_ca_file_or_not_at_all_when_told(certificate):
    server = tls_server(certificate, [OK, OK, OK])
    assert client(server, "https", verify=str(certificate[0])).request("POST", "/", b"", {}).status == 201
    assert client(server, "https", verify=False).request("POST", "/", b"", {}).status == 201
    with pytest.raises(CallFailed, match="CERTIFICATE_VERIFY_FAILED"):
        client(server, "https").request("POST", "/", b"", {})
