"""LOGS: what the backend writes holds no credential the harness handed it (CONVENTIONS: Observability;
OWASP Logging Cheat Sheet: never log session ids, access tokens, passwords or connection strings)."""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from makrx_contracts.harness.backend.launcher import RunningTarget, TargetLauncher
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.contract import MUST, violation
from makrx_contracts.harness.exchange import redact
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.fixtures import TokenMaker

from .openapi import Operation

pytestmark = pytest.mark.logs

# A compact JWS whose header and payload are JSON objects ('{"' is "eyJ" in base64url).
_JWS = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
FLUSH_SECONDS = 3.0  # how long the log may lag behind the last answer


def _secret_requests(
    client: ContractClient, make_token: TokenMaker, op: Operation | None, cookie: str
) -> list[httpx.Response]:
    """Requests that carry credentials where backends often log them: a valid token on the protected
    operation, an expired one (the 401 path logs its reason), a valid one on a missing path (404) and on
    a body that is not JSON (422), each with a session cookie."""
    headers = {"Cookie": f"session={cookie}"}
    probe = op.url() if op is not None else "/api/v1/makrx-contract-log-probe"
    sent = [
        (probe, make_token()),
        (probe, make_token(expires_in=-3600)),
        ("/api/v1/makrx-contract-log-probe", make_token()),
    ]
    responses = [
        client.request(
            op.method if op is not None and path == probe else "GET",
            path,
            headers={**headers, "Authorization": f"Bearer {token}"},
        )
        for path, token in sent
    ]
    responses.append(
        client.post(
            probe,
            content=b'{"makrx-contract": ',
            headers={**headers, "Authorization": f"Bearer {make_token()}", "Content-Type": "application/json"},
        )
    )
    return responses


@pytest.mark.contract("LOG-NO-SECRETS", level=MUST)
def test_no_credential_reaches_the_log(
    makrx_target: RunningTarget,
    makrx_client: ContractClient,
    makrx_issuer: Issuer,
    make_token: TokenMaker,
    request: pytest.FixtureRequest,
) -> None:
    """The backend's whole log — boot, migrations' output aside, and every request of the run so far,
    plus requests this contract sends with tokens and a session cookie on a success, a 401, a 404 and a
    422 — holds no token signed by the realm's keys (valid, expired or refused), no cookie value the
    harness sent, and not the database password it handed the backend.

    CONVENTIONS, Observability: "Structured logs"; OWASP Logging Cheat Sheet ("Data to exclude").
    """
    if not makrx_target.restartable:
        pytest.skip("a URL target's log is not the harness's to read")
    try:
        op: Operation | None = request.getfixturevalue("protected_operation")
    except pytest.skip.Exception:
        op = None  # no protected operation: the other requests still carry a token
    cookie = f"makrx-contract-{uuid.uuid4().hex}"
    responses = _secret_requests(makrx_client, make_token, op, cookie)
    last_id = responses[-1].headers.get("X-Request-ID")
    deadline = time.monotonic() + FLUSH_SECONDS
    while last_id and last_id not in makrx_target.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = makrx_target.log_text()
    launcher: TargetLauncher = request.getfixturevalue("makrx_launcher")
    password = urlsplit(launcher.database_url()).password
    tokens = [token for token in dict.fromkeys(_JWS.findall(log)) if makrx_issuer.keys.signed(token)]
    leaks = [f"{len(tokens)} token(s) signed by the realm's keys"] if tokens else []
    if cookie in log:
        leaks.append("the session cookie's value")
    if password and password in log:
        leaks.append("the database password (from DATABASE_URL)")
    if leaks:
        secrets = [s for s in (cookie, password) if s]
        lines = [line for line in log.splitlines() if any(s in line for s in secrets) or _JWS.search(line)][:3]
        for secret in secrets:
            lines = [line.replace(secret, f"<secret:{len(secret)} chars>") for line in lines]
        raise violation(
            "the backend's log holds credentials",
            received="; ".join(leaks[:4]),
            expected="no token, cookie value or password in any log line (log ids, not secrets)",
            response=responses,
            details="First lines with one (cut):\n" + "\n".join(redact(line)[:300] for line in lines),
        )
