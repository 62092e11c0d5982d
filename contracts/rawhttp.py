"""Send bytes no well-behaved client would (CR/LF or control characters in a header) and read the answer."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["RawResponse", "raw_request"]


@dataclass(frozen=True)
class RawResponse:
    """A parsed HTTP/1.1 response; ``status`` is 0 when the server closed without answering."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    sent: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def render(self) -> str:
        sent = self.sent.decode("latin-1")[:600]
        head = "\n".join(f"  {k}: {v[:200]}" for k, v in self.headers)
        return (
            f"> (raw bytes)\n  {sent!r}\n< {self.status or 'connection closed, no answer'}\n{head}\n"
            f"  {self.body[:600].decode('utf-8', 'replace')}"
        )


def raw_request(
    base_url: str, path: str, header_lines: list[bytes], *, source_address: str | None = None, timeout: float = 5.0
) -> RawResponse:
    """One GET with the given raw header lines, over a fresh connection (``Connection: close``)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n"
    request += b"".join(line + b"\r\n" for line in header_lines) + b"Connection: close\r\n\r\n"
    with socket.create_connection(
        (host, port), timeout=timeout, source_address=(source_address, 0) if source_address else None
    ) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return RawResponse(0, [], b"", request)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if len(lines[0].split(" ")) > 1 else 0
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return RawResponse(status, headers, body, request)
