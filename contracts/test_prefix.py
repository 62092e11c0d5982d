"""PREFIX: API routes under /api, versioned /api/v1/..., OpenAPI reachable (CONVENTIONS: API Prefix)."""

from __future__ import annotations

import re

import pytest
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, expect

from .openapi import OPENAPI_PATHS, OpenAPIDoc, fetch_openapi
from .provoke import is_health_path

pytestmark = pytest.mark.prefix

# Probes (SPEC §5: health, healthz, readyz, livez, metrics) and the docs are not API routes.
_OUTSIDE_API_OK = re.compile(r"^/(health(/.*)?|healthz|readyz|livez|metrics|docs.*|redoc.*|openapi\.json)$")
_VERSIONED = re.compile(r"^/api/v\d+(/|$)")


def _doc(openapi: OpenAPIDoc | None) -> OpenAPIDoc:
    if openapi is None:
        pytest.skip("precondition: no OpenAPI document to read routes from (see PREFIX-OPENAPI)")
    return openapi


@pytest.mark.contract("PREFIX-OPENAPI", level=MUST)
def test_the_openapi_document_is_reachable(makrx_client: ContractClient) -> None:
    """The OpenAPI document is served (at /openapi.json, /api/openapi.json or /api/v1/openapi.json).

    CONVENTIONS, API Prefix (routes are discoverable); SPEC §5 PREFIX.
    """
    expect(
        fetch_openapi(makrx_client) is not None,
        "no OpenAPI document",
        received="no JSON document at " + ", ".join(OPENAPI_PATHS),
        expected="an OpenAPI document (FastAPI serves /openapi.json by default)",
        response=makrx_client.exchanges or None,
    )


@pytest.mark.contract("PREFIX-API", level=MUST)
def test_routes_are_mounted_under_api(openapi: OpenAPIDoc | None) -> None:
    """Every route except probes (`/health...`, `/healthz`, `/readyz`, `/livez`, `/metrics`) and docs is
    under /api.

    CONVENTIONS, API Prefix: "Mount routers under /api".
    """
    outside = sorted(
        {
            op.path
            for op in _doc(openapi).operations
            if not op.path.startswith("/api") and not _OUTSIDE_API_OK.match(op.path)
        }
    )
    expect(not outside, "routes outside /api", received=", ".join(outside[:10]), expected="every API route under /api")


@pytest.mark.contract("PREFIX-VERSIONED", level=MUST)
def test_api_routes_are_versioned(openapi: OpenAPIDoc | None) -> None:
    """The API has /api/v1/... routes, and an unversioned /api/x route exists only as an alias of a
    versioned one (backward compatibility).

    CONVENTIONS, API Prefix: "version subpaths /api/v1/... inside feature routers. Keep
    backward-compatible aliases when consolidating."
    """
    paths = {op.path for op in _doc(openapi).operations if op.path.startswith("/api")}
    versioned = {p for p in paths if _VERSIONED.match(p)}
    tails = {re.sub(r"^/api/v\d+", "", p) for p in versioned}
    unversioned = sorted(p for p in paths - versioned if not is_health_path(p) and p[len("/api") :] not in tails)
    expect(
        versioned and not unversioned,
        "API routes without a version",
        received=(", ".join(unversioned[:10]) or "no /api/vN route at all"),
        expected="routes under /api/v1/... (unversioned ones only as aliases)",
    )
