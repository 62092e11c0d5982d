"""Fixtures of the contract modules, registered by the plugin when a run has a target: the OpenAPI
document and provoked responses, once per session; callers of the protected operation and the JWKS lab
for the AUTH modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from makrx_contracts.harness import discovery
from makrx_contracts.harness.backend.launcher import TargetLauncher
from makrx_contracts.harness.backend.resolve import TargetSpec
from makrx_contracts.harness.backend.running import RunningTarget
from makrx_contracts.harness.backend.source import mount_prefixes
from makrx_contracts.harness.client import ContractClient
from makrx_contracts.harness.discovery import Finding
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.fixtures import TokenMaker
from makrx_contracts.harness.ports import SourceAddresses

from .access import ProbeChoice, Protection, Status, choose_probe, find_protection, role_rules
from .bearer import HANG_SECONDS, Caller, ValidTokenCheck
from .lab import Lab
from .openapi import OpenAPIDoc, Operation, fetch_openapi
from .provoke import Provoker, outage


@pytest.fixture(scope="session")
def session_client(makrx_target: RunningTarget, makrx_source_addresses: SourceAddresses) -> ContractClient:
    """A session-long client with its own source address (for responses shared between contracts)."""
    client = ContractClient(makrx_target.base_url, source_address=makrx_source_addresses.next())
    yield client
    client.close()


@pytest.fixture(scope="session")
def openapi(session_client: ContractClient, makrx_target: RunningTarget) -> OpenAPIDoc | None:
    """The target's OpenAPI document with its mounted sub-applications' merged in, or None when it serves none."""
    return fetch_openapi(session_client, mount_prefixes(makrx_target.spec.path))


@pytest.fixture(scope="session")
def provoker(
    session_client: ContractClient,
    openapi: OpenAPIDoc | None,
    makrx_target: RunningTarget,
    makrx_source_addresses: SourceAddresses,
    make_token: Callable[..., str],
    makrx_config: Any,
    request: pytest.FixtureRequest,
) -> Provoker:
    def new_client() -> ContractClient:
        client = ContractClient(makrx_target.base_url, source_address=makrx_source_addresses.next())
        request.addfinalizer(client.close)
        return client

    def database_down() -> Any:
        if not makrx_target.restartable:
            pytest.skip("a URL target's database is not the harness's to stop")
        return outage(request.getfixturevalue("makrx_services").postgres, "the database")

    mint = make_token if makrx_target.restartable else None  # only a launched backend trusts our issuer
    return Provoker(
        session_client,
        new_client,
        openapi,
        makrx_target.spec.settings,
        mint,
        database_down,
        makrx_config.rate_budget,
        lambda: request.getfixturevalue("protection"),
        auth_probe=lambda: request.getfixturevalue("protected_operation"),
        discovered=request.getfixturevalue("discovered"),
    )


# The contract that fails when a provoked situation answers with the wrong status.
_STATUS_OWNERS = {
    "200": "HEALTH-ENDPOINTS",
    "401": "AUTH-NO-TOKEN",
    "403": "AUTH-ROLE-FORBIDDEN",
    "429": "RATE-LIMIT",
    "preflight": "CORS-LOCAL-DEFAULT",
}


def _is_kind(kind: str, status: int) -> bool:
    if kind == "5xx":
        return status >= 500
    if kind in ("200", "preflight"):
        return status < 400
    return status == int(kind)


@pytest.fixture(scope="session")
def provoked(provoker: Provoker) -> Callable[[str], httpx.Response]:
    """The response of each kind, provoked once per session and shared by the contracts that read it.

    A contract about, say, the body of a 403 cannot judge a 401 given instead: it is skipped naming
    the precondition, and the contract that owns the status fails (ERR-STATUS; AUTH-NO-TOKEN for the
    401, AUTH-ROLE-FORBIDDEN for the 403, RATE-LIMIT for the 429, CORS-LOCAL-DEFAULT for the preflight,
    HEALTH-ENDPOINTS for /health's 200), so the gate stays red.
    """
    cache: dict[str, httpx.Response | BaseException] = {}

    def get(kind: str, check_status: bool = False) -> httpx.Response:
        if kind not in cache:
            try:
                cache[kind] = provoker.provoke(kind)
            except pytest.skip.Exception as exc:
                cache[kind] = exc  # a kind this backend cannot show is skipped once, not re-tried
        found = cache[kind]
        if isinstance(found, BaseException):
            raise found
        if not _is_kind(kind, found.status_code) and not check_status:
            owner = _STATUS_OWNERS.get(kind, "ERR-STATUS")
            pytest.skip(f"precondition: the {kind} situation answered {found.status_code} (see {owner})")
        return found

    return get


@pytest.fixture(scope="session")
def discovered(makrx_target_spec: TargetSpec, pytestconfig: pytest.Config) -> Callable[..., None]:
    """``discovered(key, toml_value, note)``: report a setting found by asking the backend (harness/discovery.py)."""

    def record(key: str, value: str, note: str = "") -> None:
        discovery.record(pytestconfig, Finding(makrx_target_spec.display, key, value, note))

    return record


@pytest.fixture(scope="session")
def ask(
    makrx_target: RunningTarget, session_client: ContractClient, make_token: TokenMaker
) -> tuple[Status, Status | None]:
    """``(anonymous, with_token)``: the status an operation answers without credentials and with a plain valid
    token (None: no answer; ``with_token`` None when the target does not trust the harness's tokens). Each
    is asked once per session: finding the protected operations and the probe ask the same ones."""
    answers: dict[tuple[str, str, bool], int | None] = {}

    def status(op: Operation, token: bool) -> int | None:
        key = (op.method, op.url(), token)
        if key not in answers:
            headers = {"Authorization": f"Bearer {make_token()}"} if token else {}
            try:
                answers[key] = session_client.request(
                    op.method, op.url(), headers=headers, timeout=HANG_SECONDS
                ).status_code
            except httpx.TransportError:
                answers[key] = None
        return answers[key]

    return (lambda op: status(op, False)), ((lambda op: status(op, True)) if makrx_target.restartable else None)


@pytest.fixture(scope="session")
def protection(
    openapi: OpenAPIDoc | None, makrx_target: RunningTarget, ask: tuple[Status, Status | None]
) -> Protection:
    """Which operations need a token where the OpenAPI document does not say so (`contracts/access.py`)."""
    if openapi is None:
        pytest.skip("the target serves no OpenAPI document at /openapi.json, so no protected operation can be found")
    settings = makrx_target.spec.settings
    return find_protection(openapi, settings, role_rules(openapi, settings), *ask)


@pytest.fixture(scope="session")
def auth_probe(
    openapi: OpenAPIDoc | None,
    makrx_target: RunningTarget,
    protection: Protection,
    ask: tuple[Status, Status | None],
    discovered: Callable[..., None],
) -> ProbeChoice:
    """The operation the AUTH contracts call: one a plain valid token may call (`contracts/access.py`)."""
    assert openapi is not None  # `protection` skips without a document
    settings = makrx_target.spec.settings
    rules = protection.rules
    choice = choose_probe(openapi, settings, rules, ask[1], protection.found)
    if choice is None:
        asked = f" (asked: {'; '.join(protection.asked)})" if protection.asked else ""
        pytest.skip(
            "no protected operation found: none has a security requirement in the OpenAPI document, and "
            f"no GET without parameters under /api answered 401/403 without a token and 2xx with one{asked}; "
            'name one with auth_probe = "GET /api/v1/..."'
        )
    if choice.source == "discovered":
        discovered("auth_probe", f"{choice.operation.method} {choice.operation.path}", choice.describe())
    for rule in rules[len(settings.roles) :]:
        discovered(
            "roles",
            {"path": rule.path, "method": rule.method, "roles": list(rule.roles)},
            f"{rule.method} {rule.path}: roles from its OpenAPI security scopes",
        )
    return choice


@pytest.fixture(scope="session")
def protected_operation(auth_probe: ProbeChoice) -> Operation:
    """The AUTH probe's operation."""
    return auth_probe.operation


@pytest.fixture(scope="module")
def caller(
    makrx_target: RunningTarget, protected_operation: Operation, makrx_source_addresses: SourceAddresses
) -> Iterator[Caller]:
    """Requests to the target's protected operation, shared by the module (cheap: a handful of clients)."""
    found = Caller(makrx_target.base_url, protected_operation, makrx_source_addresses)
    yield found
    found.close()


@pytest.fixture(scope="module")
def valid_token(caller: Caller, make_token: TokenMaker) -> ValidTokenCheck:
    """``valid_token.require()``: skip unless the target accepts a plain valid token (checked once)."""
    return ValidTokenCheck(caller, make_token)


@pytest.fixture
def trusted(makrx_target_spec: TargetSpec) -> None:
    """Skips on a URL target: the backend does not trust the harness's issuer."""
    if makrx_target_spec.is_url:
        pytest.skip(
            f"needs the harness's issuer: {makrx_target_spec.url} was started by someone else and does "
            "not trust the tokens the harness mints"
        )


@pytest.fixture(scope="module")
def lab(
    makrx_launcher: TargetLauncher,
    makrx_target_spec: TargetSpec,
    makrx_config,
    makrx_source_addresses: SourceAddresses,
    request: pytest.FixtureRequest,
) -> Iterator[Lab]:
    """A second issuer (same realm, own port and fetch log) and a backend instance that trusts it."""
    client_id = makrx_target_spec.client_id
    issuer = Issuer(
        realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed, default_audience=client_id
    ).start()
    try:
        target = makrx_launcher.spawn(name=f"{makrx_target_spec.name}-auth-lab", issuer=issuer)
        try:
            # Found in the session backend's OpenAPI document: when this module comes first (it does
            # under -n), that backend boots now, beside this instance rather than before it.
            operation: Operation = request.getfixturevalue("protected_operation")
            makrx_launcher.ready(target)
            found = Lab(
                issuer,
                target,
                Caller(target.base_url, operation, makrx_source_addresses),
                TokenMaker(issuer, client_id, makrx_target_spec.settings.token_roles),
            )
            try:
                yield found
            finally:
                found.caller.close()
        finally:
            makrx_launcher.stop(target)
    finally:
        issuer.stop()


@pytest.fixture
def fresh_lab(trusted: None, valid_token: ValidTokenCheck, lab: Lab) -> Iterator[Lab]:
    """The lab reset and accepting valid tokens before the test; faults off and issuer up after it."""
    valid_token.require()
    lab.reset()
    lab.settle()
    try:
        yield lab
    finally:
        lab.issuer.faults.clear()
        if not lab.issuer.is_up:
            lab.issuer.come_up()
