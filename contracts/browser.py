"""Pages at chosen origins in headless Chromium that `fetch()` an API as an SPA does, and what the page's
script could see.

Any page origin is had without binding its port: Chromium reaches page URLs through a one-page HTTP
proxy of the harness (https ones through a CONNECT tunnel whose TLS the proxy ends itself, with a
self-signed certificate), while `fetch()` goes to the backend's 127.0.0.1 port directly (proxy bypass).
Pages are not answered by Playwright's `page.route`: with interception on, Playwright answers every CORS
preflight itself, permissively, and the browser would never ask the backend. A blocked `fetch()` counts
only when a no-cors request to the same URL gets through: the block is then CORS's, not mixed content's,
Local Network Access's or the network's.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from makrx_contracts.harness.errors import HarnessError

__all__ = ["Seen", "browse", "headless_chromium"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PAGE = b"<!doctype html><title>makrx-contract</title>"
FETCH_TIMEOUT_MS = 10_000

_FETCH = """async ({url, method, token, requestId}) => {
  const headers = token === null ? {} : {"Authorization": "Bearer " + token, "X-Request-ID": requestId};
  const init = {method, credentials: token === null ? "omit" : "include", headers};
  if (method !== "GET") { headers["Content-Type"] = "application/json"; init.body = "{}"; }
  try {
    const response = await fetch(url, init);
    return {origin: location.origin, blocked: false, status: response.status,
            requestId: response.headers.get("X-Request-ID")};
  } catch (error) {
    // CORS lets a no-cors request through (its response opaque); mixed content, Local Network Access
    // or the network stop that one too.
    const reached = await fetch(url, {mode: "no-cors"}).then(() => true, () => false);
    return {origin: location.origin, blocked: true, reached, error: String(error)};
  }
}"""


@dataclass(frozen=True)
class Seen:
    """What the page's script could see: a network error (the browser blocked it) or the response."""

    blocked: bool
    status: int | None = None
    request_id: str | None = None
    error: str = ""

    def __str__(self) -> str:
        if self.blocked:
            return f"blocked by the browser ({self.error})"
        return f"readable: {self.status}, X-Request-ID {self.request_id!r} visible to the page"


def _executable() -> str | None:
    explicit = os.environ.get("MAKRX_BROWSER")
    return explicit or next((found for name in BROWSERS if (found := shutil.which(name))), None)


def _tls(host: str) -> ssl.SSLContext:
    """A TLS server context presenting a fresh self-signed certificate for ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:  # load_cert_chain reads only files
        chain = Path(directory, "page.pem")
        chain.write_bytes(
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            + certificate.public_bytes(Encoding.PEM)
        )
        context.load_cert_chain(chain)
    return context


class _PageProxyServer(ThreadingHTTPServer):
    """The page proxy, on a free loopback port; ``tls`` ends the TLS of its CONNECT tunnels."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _PageProxy)
        self.tls = tls


class _PageProxy(BaseHTTPRequestHandler):
    """Answers every GET, whatever its host, with the blank page; every CONNECT too, inside the tunnel,
    over TLS it ends itself."""

    server: _PageProxyServer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def do_CONNECT(self) -> None:
        self.send_response(200)
        self.end_headers()
        with self.server.tls.wrap_socket(self.connection, server_side=True) as tunnel:
            self.rfile, self.wfile = tunnel.makefile("rb"), tunnel.makefile("wb")
            self.handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def headless_chromium(https_host: str) -> Iterator[Any]:
    """Headless Chromium through Playwright (the system's browser: no download), its page URLs served by
    a proxy of ours (https ones for ``https_host``); or a loud skip."""
    executable = _executable()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser family needs Playwright: pip install 'makrx-contracts[browser]'")
    if executable is None:
        pytest.skip("the browser family needs Chromium: apt-get install chromium (or set MAKRX_BROWSER=/path)")
    pages = _PageProxyServer(_tls(https_host))
    threading.Thread(target=pages.serve_forever, name="makrx-page-proxy", daemon=True).start()
    # Loopback hosts go through the proxy too (`<-loopback>`), except the backend's address. Certificate
    # errors are ignored: the https pages are ours, self-signed. From them, fetch() to http://127.0.0.1 is
    # no mixed content (loopback is potentially trustworthy) and asks no Local Network Access permission
    # (a page's address space is its proxy's: loopback).
    args = [
        f"--proxy-server=http://127.0.0.1:{pages.server_port}",
        "--proxy-bypass-list=<-loopback>;127.0.0.1",
        "--ignore-certificate-errors",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),
    ]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        pages.shutdown()
        pages.server_close()


def browse(browser: Any, origin: str, url: str, method: str, token: str | None) -> Seen:
    """Load a blank page at ``origin`` and `fetch(url)` from it as an SPA does (``token`` None: a plain
    anonymous GET, no credentials, no preflight). A page that did not load or run at ``origin``, or that
    cannot reach ``url`` at all, is the harness's failure: the browser said nothing about CORS."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(FETCH_TIMEOUT_MS)
        page.goto(f"{origin}/")
        found = page.evaluate(_FETCH, {"url": url, "method": method, "token": token, "requestId": str(uuid.uuid4())})
    finally:
        context.close()
    if found["origin"] != origin:
        raise HarnessError(f"the browser ran the page meant for {origin} at {found['origin']}")
    if found["blocked"] and not found["reached"]:
        raise HarnessError(
            f"a page at {origin} cannot reach {url}, not even with a no-cors request "
            f"({found['error']}): no CORS verdict"
        )
    return Seen(found["blocked"], found.get("status"), found.get("requestId"), found.get("error", ""))
