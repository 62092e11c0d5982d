"""A respx route that answers for the issuer in-process: the same discovery, JWKS, token endpoint, faults and counts."""

from __future__ import annotations

import httpx
import respx

from ._http import Request
from .server import Issuer

__all__ = ["RESPX_CLIENT_IP", "issuer_respx_routes"]

RESPX_CLIENT_IP = "respx"
"""The client address fetches through the respx route are counted under (``issuer.fetches(client="respx")``)."""


def issuer_respx_routes(router: respx.Router, issuer: Issuer) -> respx.Route:
    """Route every request under ``issuer.base_url`` to the issuer's handler, without any network.

    Works with ``respx.mock`` / the ``respx_mock`` fixture and with sync or async httpx clients. The
    issuer need not be started when it was created with ``public_base_url=`` (it then counts as up
    until ``go_down()``). Rotation, faults and fetch counts (client ``"respx"``) behave as over HTTP;
    ``go_down()`` makes requests raise ``httpx.ConnectError``; a delay fault sleeps in the calling thread.
    """
    prefix = issuer.base_url + "/"

    def answer(request: httpx.Request) -> httpx.Response:
        if not issuer.is_up:
            raise httpx.ConnectError(f"makrx issuer at {issuer.base_url} is down", request=request)
        target = request.url.raw_path.decode("ascii")
        reply = issuer.handle(
            Request(
                method=request.method,
                target=target,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=request.read(),
                client_ip=RESPX_CLIENT_IP,
            )
        )
        if reply is None or reply.status == 0:
            raise httpx.ConnectError(f"makrx issuer at {issuer.base_url} went down", request=request)
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body, request=request)

    return router.route(url__startswith=prefix).mock(side_effect=answer)
