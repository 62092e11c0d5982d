"""What a browser asks a backend before and while an app at another origin calls it, and what the answers
allow (Fetch standard §3.2): preflights, the allowed origin, the listed methods and headers."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from makrx_contracts.harness.client import ContractClient

__all__ = ["PATH", "acao", "api_path", "listed", "preflight"]

PATH = "/api/health"  # served by every MakrX backend, to anyone: CORS judged apart from auth


def preflight(
    client: ContractClient,
    origin: str,
    path: str = PATH,
    *,
    method: str = "GET",
    headers: Sequence[str] = ("authorization", "content-type"),
) -> httpx.Response:
    """The OPTIONS request a browser sends before ``method`` with ``headers`` from a page at ``origin``."""
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ",".join(headers),
        },
    )


def acao(response: httpx.Response) -> str | None:
    return response.headers.get("Access-Control-Allow-Origin")


def listed(response: httpx.Response, header: str) -> set[str]:
    """The entries of a comma-separated header, lower case."""
    return {v.strip().lower() for v in response.headers.get(header, "").split(",") if v.strip()}


def api_path(request: pytest.FixtureRequest) -> str:
    """An operation a browser app calls: the AUTH probe's, else the health alias under /api."""
    try:
        return request.getfixturevalue("protected_operation").url()
    except pytest.skip.Exception:
        return PATH
