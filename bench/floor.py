"""The floor for one large body in Python: the least a prober can do and still hash what an
edge sends. One blocking TLS socket (the standard `ssl` module, SNI and verification as
`check` sets them), one request, the body read into one 1 MiB buffer and hashed from there:
no event loop, no memory BIO, no parsing beyond the head. The benchmark runs it beside
`cdnprobe check` on the 1 GiB object, so the report shows how much of the gap to `openssl
speed` is cdnprobe's and how much is the stack's (TCP over loopback, OpenSSL's records, the
hash itself).

    python3 -m bench.floor HOST PORT CA_FILE ADDRESS PATH

Prints one JSON line: the probe's seconds (connect to last byte), bytes and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import sys
import time

BUFFER = 1 << 20
HEAD_MAX = 32 << 10


def fetch(host: str, port: int, ca_file: str, address: str, path: str) -> dict[str, object]:
    context = ssl.create_default_context(cafile=ca_file)
    started = time.perf_counter()
    raw = socket.create_connection((address, port), timeout=120)
    with context.wrap_socket(raw, server_hostname=host) as tls:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept-Encoding: identity\r\n"
        tls.sendall(f"{request}Connection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = tls.recv(HEAD_MAX)
            if not data or len(head) > HEAD_MAX:
                raise SystemExit("no complete response head")
            head += data
        head, _, first = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise SystemExit(f"status line {lines[0]!r}")
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        size = int(fields["content-length"])
        digest = hashlib.sha256(first)
        received = len(first)
        view = memoryview(bytearray(BUFFER))
        while received < size:
            n = tls.recv_into(view, min(BUFFER, size - received))
            if not n:
                raise SystemExit(f"closed after {received} of {size} bytes")
            digest.update(view[:n])
            received += n
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "bytes": received, "sha256": digest.hexdigest()}


def main() -> int:
    host, port, ca_file, address, path = sys.argv[1:]
    print(json.dumps(fetch(host, int(port), ca_file, address, path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
