"""AUTH: Keycloak bearer tokens — 401 without a valid one, 403 without the role, a cached and rotation-aware
JWKS, and no 500 or hang when Keycloak fails (CONVENTIONS: Auth; RFC 6750; RFC 8725)."""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hypothesis_seed

from harness.client import ContractClient
from harness.contract import MUST, SHOULD, expect, expect_eventually, violation
from harness.errorshape import parse_error_body
from harness.issuer import Issuer
from harness.issuer.catalogue import ACCEPT, CATALOGUE, BadTokens, get
from harness.issuer.fixtures import TokenMaker
from harness.issuer.mutations import Mutation, MutationPlan, mutation_plans
from harness.openapi import OpenAPIDoc, Operation
from harness.ports import SourceAddresses
from harness.rawhttp import raw_request
from harness.target.launcher import JWKS_TTL_SECONDS, RunningTarget, TargetLauncher
from harness.target.resolve import TargetSpec
from harness.target.settings import RoleRule

pytestmark = pytest.mark.auth

HANG_SECONDS = 10.0  # the client timeout: no answer by then is a hang
PER_ADDRESS = 40  # requests per source address, well under any per-IP limit (often 60-100/min)
TTL = JWKS_TTL_SECONDS  # KEYCLOAK_PK_TTL_SECONDS the harness gives every instance
SETTLE_SECONDS = TTL + 3.0  # a cached JWKS expires, a refetch cooldown passes
BURST = 20  # requests of the caching contract
MAX_JWKS_FETCHES = 5  # "a few" for BURST requests: a TTL expiry and a rate-limited refetch or two
MUTATION_EXAMPLES = 30
NO_SUCH_ROLE = "makrx-contract-no-such-role"
_BEARER_CHALLENGE = re.compile(r"\s*bearer(\s|,|$)", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- helpers


def bearer(token: str) -> str:
    return f"Bearer {token}"


def challenges_bearer(response: httpx.Response) -> bool:
    """A `WWW-Authenticate` challenge for the Bearer scheme (RFC 6750 §3) among the response's challenges."""
    return any(_BEARER_CHALLENGE.match(value) for value in response.headers.get_list("www-authenticate"))


def accepted(op: Operation, response: httpx.Response) -> bool:
    """Got past authentication: 2xx; for an operation with parameters or a body, anything but 401/403/5xx."""
    if "{" in op.path or op.has_body:
        return response.status_code not in (401, 403) and response.status_code < 500
    return 200 <= response.status_code < 300


class Caller:
    """Requests to one protected operation from a fresh source address every PER_ADDRESS requests, so the
    target's per-IP rate limit never answers for it; no answer within HANG_SECONDS is a violation."""

    def __init__(self, base_url: str, op: Operation, addresses: SourceAddresses) -> None:
        self.base_url = base_url
        self.op = op
        self.addresses = addresses
        self._clients: list[ContractClient] = []
        self._used = PER_ADDRESS

    def _client(self) -> ContractClient:
        if self._used >= PER_ADDRESS:
            self._clients.append(ContractClient(self.base_url, source_address=self.addresses.next(),
                                                timeout=HANG_SECONDS))
            self._used = 0
        self._used += 1
        return self._clients[-1]

    def raw(self, authorization: str | None, *, method: str | None = None, path: str | None = None,
            body: bool | None = None) -> httpx.Response:
        """One request (the operation's, unless method/path say otherwise); transport errors propagate."""
        headers = {} if authorization is None else {"Authorization": authorization}
        with_body = self.op.has_body if body is None else body
        return self._client().request(method or self.op.method, path or self.op.url(), headers=headers,
                                      json={} if with_body else None)

    def send(self, authorization: str | None, *, title: str, expected: str, details: str | None = None,
             method: str | None = None, path: str | None = None, body: bool | None = None) -> httpx.Response:
        """Like raw(), but a timeout or a dropped connection fails the contract."""
        __tracebackhide__ = True
        try:
            return self.raw(authorization, method=method, path=path, body=body)
        except httpx.TimeoutException:
            raise violation(f"{title}: no answer", received=f"no answer within {HANG_SECONDS:.0f} s",
                            expected=expected, details=details) from None
        except httpx.TransportError as exc:
            raise violation(f"{title}: the connection failed", received=f"{type(exc).__name__}: {exc}",
                            expected=expected, details=details) from None

    def close(self) -> None:
        for client in self._clients:
            client.close()


@dataclass
class ValidTokenCheck:
    """Whether the target accepts a plain valid token at all: the precondition of every contract that
    needs an accepted token to judge something else (else it is skipped, and AUTH-VALID-TOKEN fails)."""

    caller: Caller
    make_token: TokenMaker
    _ok: bool | None = None

    def require(self) -> None:
        if self._ok is None:
            try:
                self._ok = accepted(self.caller.op, self.caller.raw(bearer(self.make_token())))
            except httpx.TransportError:
                self._ok = False
        if not self._ok:
            pytest.skip("precondition: a valid token is refused (see AUTH-VALID-TOKEN)")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def caller(makrx_target: RunningTarget, protected_operation: Operation,
           makrx_source_addresses: SourceAddresses) -> Iterator[Caller]:
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
        pytest.skip(f"needs the harness's issuer: {makrx_target_spec.url} was started by someone else and does "
                    "not trust the tokens the harness mints")


@pytest.fixture(scope="module")
def no_token_answer(caller: Caller) -> httpx.Response:
    """The answer to a request without credentials, once (MALFORMED's precondition)."""
    return caller.send(None, title="a request without credentials", expected="401")


# ---------------------------------------------------------------------------------------------- credentials


_NON_BEARER = {
    "absent": None,
    "empty": "",
    "basic": "Basic bWFrcng6Y29udHJhY3Q=",
    "token-scheme": "Token {token}",
}


@pytest.mark.contract("AUTH-NO-TOKEN", level=MUST)
@pytest.mark.parametrize("credentials", _NON_BEARER)
def test_no_bearer_token_is_401_with_a_bearer_challenge(caller: Caller, make_token: TokenMaker,
                                                         makrx_target_spec: TargetSpec, credentials: str) -> None:
    """A protected operation called without a Bearer token — no Authorization header, an empty one, or
    another scheme (Basic, `Token <jwt>`) — answers 401 with `WWW-Authenticate: Bearer`.

    CONVENTIONS, Auth (Keycloak SSO, JWT validation); RFC 6750 §3; RFC 9110 §11.6.1 and §15.5.2.
    """
    template = _NON_BEARER[credentials]
    token = make_token() if not makrx_target_spec.is_url else "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
    authorization = None if template is None else template.format(token=token)
    response = caller.send(authorization, title=f"a request with {credentials} credentials", expected="401")
    if response.status_code == 403:
        raise violation("a request without a Bearer token got 403, not 401",
                        received=f"403 for {credentials} credentials",
                        expected="401 with WWW-Authenticate: Bearer (403 means: known caller, no permission)",
                        response=response,
                        details="Older FastAPI versions' HTTPBearer() (auto_error=True) answer 403 here: use "
                                "HTTPBearer(auto_error=False) and raise 401 with WWW-Authenticate: Bearer yourself.")
    expect(response.status_code == 401 and challenges_bearer(response),
           f"a request with {credentials} credentials was not a 401 Bearer challenge",
           received=f"{response.status_code}, WWW-Authenticate {response.headers.get('www-authenticate')!r}",
           expected="401 with WWW-Authenticate: Bearer", response=response)


_MALFORMED = {
    "bearer-alone": "Bearer",
    "bearer-blank": "Bearer   ",
    "two-tokens": "Bearer {token} {token}",
    "two-credentials": "Bearer {token}, Bearer {token}",
    "no-space": "Bearer:{token}",
    "no-scheme": "{token}",
    "garbage": "Bearer !@#$%^&*()<>[]{{}}",
}


@pytest.mark.contract("AUTH-MALFORMED-HEADER", level=MUST)
@pytest.mark.parametrize("header", _MALFORMED)
def test_a_malformed_authorization_header_is_401(caller: Caller, make_token: TokenMaker, no_token_answer,
                                                 makrx_target_spec: TargetSpec,
                                                 makrx_source_addresses: SourceAddresses, header: str) -> None:
    """A malformed Authorization header — "Bearer" alone or with blanks, two tokens, a comma list, no
    space, a bare token, garbage — answers 401: never 2xx (a valid token inside does not make it valid),
    never 5xx.

    CONVENTIONS, Auth; RFC 6750 §2.1 (`Authorization: Bearer 1*b64token`); RFC 9110 §11.6.2.
    """
    if no_token_answer.status_code != 401:
        pytest.skip(f"precondition: a request without credentials already answers {no_token_answer.status_code} "
                    "(see AUTH-NO-TOKEN)")
    token = make_token() if not makrx_target_spec.is_url else "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
    value = _MALFORMED[header].format(token=token)
    op = caller.op
    if value != value.strip() and op.method == "GET" and not op.has_body:
        # httpx refuses to send a header value with trailing blanks: send the bytes ourselves.
        raw = raw_request(caller.base_url, op.url(), [b"Authorization: " + value.encode()],
                          source_address=makrx_source_addresses.next(), timeout=HANG_SECONDS)
        if raw.status != 401:
            raise violation(f"a malformed Authorization header ({header}) was not refused with 401",
                            received=str(raw.status or "no answer"), expected="401",
                            details="Raw exchange (the token is a harness test token):\n" + raw.render())
        return
    response = caller.send(value.strip(), title=f"a malformed Authorization header ({header})", expected="401")
    expect(response.status_code == 401, f"a malformed Authorization header ({header}) was not refused with 401",
           received=str(response.status_code), expected="401", response=response)


@pytest.mark.contract("AUTH-VALID-TOKEN", level=MUST)
def test_a_valid_token_is_accepted(trusted: None, caller: Caller, make_token: TokenMaker) -> None:
    """A valid access token, as Keycloak issues it for this service (RS256, kid, iss, aud = client id,
    typ Bearer), gets past authentication: 2xx from the protected operation.

    CONVENTIONS, Auth: "Keycloak SSO (realm makrx), JWT (RS256) validation".
    """
    response = caller.send(bearer(make_token()), title="a valid token", expected="2xx")
    expect(accepted(caller.op, response), "a valid access token was refused", received=str(response.status_code),
           expected=f"2xx from {caller.op.method} {caller.op.path}", response=response)


@pytest.mark.contract("AUTH-SCHEME-CASE", level=SHOULD)
@pytest.mark.parametrize("scheme", ("bearer", "BEARER"))
def test_the_bearer_scheme_is_case_insensitive(trusted: None, caller: Caller, make_token: TokenMaker,
                                               valid_token: ValidTokenCheck, scheme: str) -> None:
    """The authentication scheme name is case-insensitive: `bearer <token>` is as good as `Bearer <token>`.

    RFC 9110 §11.1 ("case-insensitive token"); RFC 6750 §2.1.
    """
    valid_token.require()
    response = caller.send(f"{scheme} {make_token()}", title=f"a valid token with scheme {scheme!r}",
                           expected="2xx")
    expect(accepted(caller.op, response), f"a valid token with the scheme written {scheme!r} was refused",
           received=str(response.status_code), expected="2xx, as for 'Bearer'", response=response)


# ---------------------------------------------------------------------------------------------- bad tokens


@dataclass
class CatalogueAnswers:
    """Each catalogue case's answer from the target, fetched once and shared by AUTH-BAD-TOKEN[case] and
    the property contract's precondition."""

    bad_token: BadTokens
    issuer: Issuer
    caller: Caller
    _answers: dict[str, httpx.Response | str] = field(default_factory=dict)

    def answer(self, name: str) -> httpx.Response | str:
        """The response, or a sentence saying why there was none."""
        if name not in self._answers:
            case = get(name)
            try:
                token = self.bad_token(name)  # prepares the issuer's keys when the case needs it
                try:
                    self._answers[name] = self.caller.raw(bearer(token))
                except httpx.TimeoutException:
                    self._answers[name] = f"no answer within {HANG_SECONDS:.0f} s"
                except httpx.TransportError as exc:
                    self._answers[name] = f"{type(exc).__name__}: {exc}"
            finally:
                if case.preparer is not None:
                    self.issuer.keys.reset()  # the session issuer is shared: back to one active key
        return self._answers[name]

    def ok(self, name: str) -> bool:
        found = self.answer(name)
        return not isinstance(found, str) and get(name).verdict.allows(found.status_code)

    def failing(self) -> list[str]:
        return [case.name for case in CATALOGUE if case.applies(self.issuer) and not self.ok(case.name)]


@pytest.fixture(scope="module")
def catalogue(bad_token: BadTokens, makrx_issuer: Issuer, caller: Caller) -> CatalogueAnswers:
    return CatalogueAnswers(bad_token, makrx_issuer, caller)


@pytest.mark.contract("AUTH-BAD-TOKEN", level=MUST)
@pytest.mark.parametrize("case", [case.name for case in CATALOGUE])
def test_a_bad_token_is_refused(trusted: None, catalogue: CatalogueAnswers, valid_token: ValidTokenCheck,
                                case: str) -> None:
    """Every token of the bad-token catalogue gets the answer the catalogue states — 401 for expired, not
    yet valid, wrong iss/aud, tampered or stripped signatures, alg none/HS256 key confusion, unknown or
    injected kid, jku/x5u/jwk headers, unknown crit, retired keys, malformed or oversized tokens (400/413/
    431 allowed there) — never 2xx, never 5xx, within HANG_SECONDS. The one valid control (aud list with
    ours) is accepted.

    CONVENTIONS, Auth: "JWT (RS256) validation", "Validate issuer; audience verification"; RFC 8725 §3.1
    (algorithms), §3.8-3.9 (iss, aud), §3.10 (kid, jku, x5u), §3.11 (typ); RFC 7515 §4.1.11 (crit).
    """
    found = get(case)
    if not found.applies(catalogue.issuer):
        pytest.skip(f"{case} does not apply to a {catalogue.issuer.algorithm} issuer")
    if found.verdict is ACCEPT:
        valid_token.require()
    answer = catalogue.answer(case)
    details = f"Case {case}: {found.description}\nFix: {found.hint}"
    if isinstance(answer, str):
        raise violation(f"the {case} token got no answer", received=answer,
                        expected=f"{found.verdict}, within {HANG_SECONDS:.0f} s", details=details)
    status = answer.status_code
    if found.verdict.allows(status):
        return
    if found.verdict is ACCEPT:
        title = f"the valid {case} token was refused"
    elif 200 <= status < 300:
        title = f"the {case} token was accepted"
    elif status >= 500:
        title = f"the {case} token crashed the backend"
    elif status == 403:
        title = f"the {case} token got 403: a token that fails validation is 401 (RFC 6750 §3.1 invalid_token)"
    else:
        title = f"the {case} token was not refused with 401"
    raise violation(title, received=str(status), expected=str(found.verdict), response=answer, details=details)


# Rules a random search of MUTATION_EXAMPLES may miss, always tried first.
_PINNED_MUTATIONS = (
    MutationPlan("claims", "claim_extra", ("x_makrx", "ignored")),  # RFC 7519 §4: unknown claims are ignored
    MutationPlan("header", "header_extra", ("x-makrx", "ignored")),  # RFC 7515 §4: unknown members are ignored
    MutationPlan("claims", "claim_time", ("iat", ("string", 0))),  # RFC 7519 §2: NumericDate is a JSON number
    MutationPlan("claims", "claim_time", ("nbf", ("string", 0))),
)


def _mutation_verdict(mutation: Mutation) -> str:
    if not mutation.valid:
        return "401: the mutation made the token invalid"
    return "2xx, or 401 (a strict reading may refuse it); never 5xx" if mutation.ambiguous else \
        "2xx: the mutation leaves the token valid"


@pytest.mark.contract("AUTH-MUTATED-TOKEN", level=MUST)
def test_mutated_tokens_get_the_right_answer(trusted: None, caller: Caller, makrx_issuer: Issuer, makrx_config,
                                             catalogue: CatalogueAnswers, valid_token: ValidTokenCheck) -> None:
    """Property: a valid token mutated at random — header members, claim values and types, signature
    bytes, encoding — is refused with 401 unless the mutation leaves it valid, in which case it is
    accepted (2xx; 401 tolerated where the mutation is ambiguous); never 5xx. Bounded examples,
    deterministic with --makrx-seed; the shrunk failing token is shown decoded, its signature cut.

    Judged only once the bad-token catalogue passes (else skipped naming the failing cases): random
    mutations would only repeat what AUTH-BAD-TOKEN already shows.

    CONVENTIONS, Auth: "JWT (RS256) validation"; RFC 8725 §3; RFC 7519 §2, §4; RFC 7515 §4, §5.2.
    """
    valid_token.require()
    failing = catalogue.failing()
    if failing:
        pytest.skip(f"precondition: the bad-token catalogue already fails ({', '.join(failing[:4])}"
                    f"{', ...' if len(failing) > 4 else ''}; see AUTH-BAD-TOKEN)")
    seed = makrx_config.seed if makrx_config.seed is not None else random.getrandbits(32)
    audience = makrx_issuer.default_audience
    audience = audience if isinstance(audience, str) else list(audience)[0]

    unanswered: list[tuple[str, str]] = []  # (details, what happened): reported after the run, unshrunk

    def check(plan: MutationPlan) -> None:
        if unanswered:
            return  # shrinking through requests that each wait HANG_SECONDS would take minutes
        mutation = plan.apply(makrx_issuer, audience)
        details = f"Mutation {mutation.redacted()}\nReproduce with --makrx-seed={seed}."
        try:
            response = caller.raw(bearer(mutation.token))
        except httpx.TimeoutException:
            unanswered.append((details, f"no answer within {HANG_SECONDS:.0f} s"))
            return
        except httpx.TransportError as exc:
            unanswered.append((details, f"{type(exc).__name__}: {exc}"))
            return
        status = response.status_code
        if status >= 500:
            title = "a mutated token crashed the backend"
        elif not mutation.valid and status != 401:
            title = "an invalid mutated token was not refused with 401"
        elif mutation.valid and not accepted(caller.op, response) and not (mutation.ambiguous and status == 401):
            title = "a mutated token that is still valid was refused"
        else:
            return
        raise violation(title, received=str(status), expected=_mutation_verdict(mutation), response=response,
                        details=details)

    run = given(plan=mutation_plans())(check)
    for plan in reversed(_PINNED_MUTATIONS):
        run = example(plan=plan)(run)
    run = settings(max_examples=MUTATION_EXAMPLES, database=None, deadline=None, print_blob=False,
                   report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                   phases=(Phase.explicit, Phase.generate, Phase.shrink))(run)
    hypothesis_seed(seed)(run)()
    if unanswered:
        details, received = unanswered[0]
        raise violation("a mutated token got no answer", received=received, expected="an answer (401 or 2xx)",
                        details=details)


@pytest.mark.contract("AUTH-INVALID-TOKEN-RESPONSE", level=MUST)
def test_a_refused_token_gets_a_shaped_401_challenge(trusted: None, caller: Caller, make_token: TokenMaker,
                                                     provoked: Callable[[str], httpx.Response]) -> None:
    """The 401 for a token that fails validation (here: expired) is answered like the 401 without a
    token: a Bearer challenge in `WWW-Authenticate` and the error shape with the request id. Token
    checks often raise on their own path, past the handler that shapes the rest. (The 401 without a
    token is AUTH-NO-TOKEN's, ERR-SHAPE's and RID-IN-ERROR-BODY's case: judged here only when it passes.)

    CONVENTIONS, Error Handling ("structured responses, add a request id"); RFC 6750 §3.1 (invalid_token);
    RFC 9110 §11.6.1.
    """
    no_token = provoked("401")
    if parse_error_body(no_token).problems or not challenges_bearer(no_token):
        pytest.skip("precondition: the 401 without a token already lacks the error shape or the Bearer "
                    "challenge (see ERR-SHAPE, AUTH-NO-TOKEN)")
    response = caller.send(bearer(make_token(expires_in=-3600)), title="an expired token", expected="401")
    if response.status_code != 401:
        pytest.skip(f"precondition: an expired token answered {response.status_code} (see AUTH-BAD-TOKEN[expired])")
    problems = list(parse_error_body(response).problems)
    if not challenges_bearer(response):
        problems.append(f"WWW-Authenticate {response.headers.get('www-authenticate')!r} has no Bearer challenge")
    expect(not problems, "the 401 for an invalid token lacks what the 401 without a token has",
           received="; ".join(problems),
           expected='WWW-Authenticate: Bearer (error="invalid_token") and a JSON body with code, message and '
                    "the request id", response=[no_token, response])


@pytest.mark.contract("AUTH-KEY-URL-NOT-FETCHED", level=MUST)
def test_jku_and_x5u_are_never_fetched(trusted: None, catalogue: CatalogueAnswers, makrx_issuer: Issuer) -> None:
    """Tokens whose `jku` or `x5u` header points at an attacker's server never make the backend contact
    it (the harness runs that server and records every request): keys come from the realm's JWKS only.
    (Whether such tokens are refused is AUTH-BAD-TOKEN's.)

    CONVENTIONS, Auth: "Prefer JWKS (/protocol/openid-connect/certs) ... select by kid"; RFC 8725 §3.10
    (server-side request forgery through jku/x5u).
    """
    answers = [catalogue.answer(name) for name in ("jku_attacker", "x5u_attacker")]
    attacker = makrx_issuer.attacker
    if not attacker.was_fetched():
        time.sleep(0.3)  # a backend may fetch in the background after answering
    hits = attacker.hits
    expect(not hits, "the backend fetched a URL named in a token header",
           received="; ".join(f"{hit.method} {hit.path} from {hit.client_ip} ({hit.user_agent})" for hit in hits),
           expected="no request to the jku/x5u server: keys only from the realm's JWKS",
           response=[a for a in answers if not isinstance(a, str)])


# ---------------------------------------------------------------------------------------------- roles


def _rule_url(rule: RoleRule, doc: OpenAPIDoc | None) -> tuple[str, bool]:
    """The concrete path of a role rule (parameters filled from the OpenAPI types) and whether it takes a body."""
    op = next((o for o in (doc.operations if doc else []) if o.path == rule.path and o.method == rule.method), None)
    if op is None:
        return Operation(rule.path, rule.method, True, False, {}).url(), False
    return op.url(), op.has_body


def _role_rules(spec: TargetSpec) -> tuple[RoleRule, ...]:
    if not spec.settings.roles:
        pytest.skip("no role-protected endpoint configured: add [[roles]] path/method/roles to "
                    "[tool.makrx-contract]")
    return spec.settings.roles


@pytest.mark.contract("AUTH-ROLE-FORBIDDEN", level=MUST)
def test_a_missing_role_is_403(trusted: None, caller: Caller, make_token: TokenMaker, openapi: OpenAPIDoc | None,
                               makrx_target_spec: TargetSpec, valid_token: ValidTokenCheck) -> None:
    """A valid token without the role an endpoint needs answers 403 Forbidden, not 401: the caller is
    authenticated, just not allowed.

    CONVENTIONS, Auth: "role/scope helpers in dependencies.py"; RFC 9110 §15.5.4; RFC 6750 §3.1
    (insufficient_scope).
    """
    valid_token.require()
    for rule in _role_rules(makrx_target_spec):
        path, body = _rule_url(rule, openapi)
        token = make_token(roles=(NO_SUCH_ROLE,), client_roles={})
        response = caller.send(bearer(token), method=rule.method, path=path, body=body,
                               title=f"{rule.method} {rule.path} without a role", expected="403")
        if response.status_code == 401:
            raise violation(f"{rule.method} {rule.path} answered 401 to a valid token that lacks the role",
                            received="401 (re-authenticate)",
                            expected=f"403: the caller is known but lacks {' / '.join(rule.roles)}",
                            response=response)
        expect(response.status_code == 403, f"{rule.method} {rule.path} did not forbid a caller without the role",
               received=str(response.status_code), expected="403", response=response)


@pytest.mark.contract("AUTH-ROLE-SOURCES", level=MUST)
@pytest.mark.parametrize("source", ("realm_access", "resource_access"))
def test_roles_count_from_realm_and_client(trusted: None, caller: Caller, make_token: TokenMaker,
                                           openapi: OpenAPIDoc | None, makrx_target_spec: TargetSpec,
                                           valid_token: ValidTokenCheck, source: str) -> None:
    """A required role is granted whether Keycloak puts it in `realm_access.roles` (realm role) or in
    `resource_access.<client id>.roles` (client role of this service).

    CONVENTIONS, Auth: "Keycloak SSO (realm makrx) ...; role/scope helpers in dependencies.py".
    """
    valid_token.require()
    client_id = makrx_target_spec.client_id
    grants = {"realm_access": lambda roles: make_token(roles=roles, client_roles={}),
              "resource_access": lambda roles: make_token(roles=(), client_roles={client_id: roles})}
    for rule in _role_rules(makrx_target_spec):
        path, body = _rule_url(rule, openapi)

        def call(where: str) -> httpx.Response:
            return caller.send(bearer(grants[where](rule.roles)), method=rule.method, path=path, body=body,
                               title=f"{rule.method} {rule.path} with the role in {where}", expected="access")

        response = call(source)
        status = response.status_code
        granted = f"{', '.join(rule.roles)} in " + ("realm_access.roles" if source == "realm_access"
                                                    else f"resource_access.{client_id}.roles")
        expect(status not in (401, 403), f"a role granted in {source} was not honoured by {rule.method} {rule.path}",
               received=f"{status} with {granted}", expected="access (2xx, or a non-auth 4xx such as 404)",
               response=response)
        if status >= 500:
            # Past the role check the endpoint itself may fail (e.g. its table is missing): that says
            # nothing about roles, unless a caller with the realm role gets through where this one did not.
            baseline = response if source == "realm_access" else call("realm_access")
            if baseline.status_code >= 500:
                pytest.skip(f"precondition: {rule.method} {rule.path} answers {baseline.status_code} even to a "
                            "caller with the role, so it cannot show whether the role counted")
            raise violation(f"a role granted in {source} crashed {rule.method} {rule.path}",
                            received=f"{status} with {granted}",
                            expected=f"what a realm role gets ({baseline.status_code})", response=[baseline, response])


# ---------------------------------------------------------------------------------------------- JWKS lifecycle
# On a second instance of the backend trusting a second issuer: rotation and faults change that issuer
# only, so the session's backend and issuer stay as every other contract expects them, in any order.


@dataclass
class Lab:
    """A separate issuer and backend instance for the contracts that rotate keys or break Keycloak."""

    issuer: Issuer
    target: RunningTarget
    caller: Caller
    tokens: TokenMaker
    last_load: float | None = None  # a JWKS fetch seen before the fetch log was last cleared

    def token(self) -> str:
        return self.tokens()

    def unknown_kid_token(self) -> str:
        """Signed by the active key under a kid never published: the backend must look it up."""
        return self.issuer.sign(self.tokens.claims(), kid=f"makrx-contract-unknown-{uuid.uuid4().hex[:12]}")

    def last_jwks_fetch(self) -> float | None:
        log = self.issuer.fetch_log("jwks")
        return log[-1].at if log else self.last_load

    def jwks_fetched_since(self, moment: float) -> bool:
        return any(fetch.at >= moment for fetch in self.issuer.fetch_log("jwks"))

    def get(self, token: str) -> Callable[[], httpx.Response]:
        return lambda: self.caller.raw(bearer(token))

    def is_accepted(self, response: httpx.Response) -> bool:
        return accepted(self.caller.op, response)

    def log_tail(self) -> str:
        return f"Backend log ({self.target.base_url}, last lines):\n{self.target.log_tail(15)}"

    def reset(self) -> None:
        """Faults off, issuer up, one active key, fetch log cleared (remembering the last JWKS fetch)."""
        self.last_load = self.last_jwks_fetch()
        self.issuer.reset()

    def settle(self) -> None:
        """Wait until a valid token is accepted again (a cached JWKS may lack the key the reset restored)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            try:
                if self.is_accepted(self.caller.raw(bearer(self.token()))):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                pytest.skip(f"precondition: the second instance does not accept a valid token within "
                            f"{SETTLE_SECONDS:.0f} s (see AUTH-VALID-TOKEN)")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def lab(makrx_launcher: TargetLauncher, makrx_target_spec: TargetSpec, makrx_config,
        makrx_source_addresses: SourceAddresses, protected_operation: Operation) -> Iterator[Lab]:
    """A second issuer (same realm, own port and fetch log) and a backend instance that trusts it."""
    client_id = makrx_target_spec.client_id
    issuer = Issuer(realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed,
                    default_audience=client_id).start()
    try:
        env = {"KEYCLOAK_URL": issuer.base_url, "KEYCLOAK_ISSUER": issuer.issuer_url}
        with makrx_launcher.instance(env, name=f"{makrx_target_spec.name}-auth-lab") as target:
            found = Lab(issuer, target, Caller(target.base_url, protected_operation, makrx_source_addresses),
                        TokenMaker(issuer, client_id))
            try:
                yield found
            finally:
                found.caller.close()
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


@pytest.mark.contract("AUTH-KEY-ROTATION", level=SHOULD)
def test_a_rotated_key_is_accepted_without_a_restart(fresh_lab: Lab) -> None:
    """After Keycloak promotes a new signing key, tokens with its kid are accepted without restarting the
    backend, before the cached JWKS would expire: an unknown kid triggers a (rate-limited) JWKS refetch.

    CONVENTIONS, Auth: "Prefer JWKS (/protocol/openid-connect/certs) for public key rotation; cache with
    TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.keys.promote()
    expect_eventually(lab.get(lab.token()), lab.is_accepted, timeout=SETTLE_SECONDS,
                      title="a token signed by a newly promoted key was refused",
                      expected=f"2xx within {SETTLE_SECONDS:.0f} s, without a restart (JWKS TTL {TTL} s)")
    loaded = lab.last_jwks_fetch() or time.time()
    # That fetch loaded the new key. Until it is TTL old (less a margin for the request's way there),
    # only a refetch on the unknown kid lets the backend see the next key.
    lab.issuer.keys.promote()
    token, cutoff = lab.token(), loaded + TTL - 0.3
    response: httpx.Response | None = None
    while time.time() < cutoff:
        response = lab.caller.send(bearer(token), title="a token with a just-rotated kid", expected="2xx")
        if lab.is_accepted(response):
            return
        time.sleep(0.1)
    raise violation("a token with a just-rotated kid was refused while the cached JWKS was fresh",
                    received=f"{response.status_code if response is not None else 'nothing'} for "
                             f"{cutoff - loaded:.1f} s after the JWKS was fetched (TTL {TTL} s)",
                    expected="2xx before the cached JWKS expires: refetch the JWKS (rate-limited) when a token "
                             "names an unknown kid", response=response, details=lab.log_tail())


@pytest.mark.contract("AUTH-KEY-RETIRED", level=SHOULD)
def test_a_retired_keys_tokens_are_refused_after_the_ttl(fresh_lab: Lab) -> None:
    """Once Keycloak retires (unpublishes) a key, tokens it signed are refused within the JWKS cache TTL
    the harness set (KEYCLOAK_PK_TTL_SECONDS), without a restart.

    CONVENTIONS, Auth: "Prefer JWKS ... for public key rotation; cache with TTL".
    """
    lab = fresh_lab
    old_token = lab.token()
    lab.issuer.keys.promote()
    lab.issuer.keys.retire()
    expect_eventually(lab.get(old_token), lambda response: response.status_code == 401, timeout=SETTLE_SECONDS,
                      title="a token signed by a retired key was still accepted",
                      expected=f"401 within {SETTLE_SECONDS:.0f} s of the key's retirement "
                               f"(KEYCLOAK_PK_TTL_SECONDS={TTL})")


@pytest.mark.contract("AUTH-JWKS-CACHED", level=SHOULD)
@pytest.mark.parametrize("tokens", ("valid", "unknown-kids"))
def test_the_jwks_is_cached(fresh_lab: Lab, tokens: str) -> None:
    """The JWKS is cached: BURST requests with valid tokens cause at most a few JWKS fetches, and so do
    BURST tokens with unknown kids (the refetch on an unknown kid is rate-limited, not one per request).

    CONVENTIONS, Auth: "Prefer JWKS ...; cache with TTL; select by kid".
    """
    lab = fresh_lab
    lab.issuer.reset_fetches()
    started = time.monotonic()
    last: httpx.Response | None = None
    for _ in range(BURST):
        token = lab.token() if tokens == "valid" else lab.unknown_kid_token()
        last = lab.caller.send(bearer(token), title=f"a burst of {tokens} tokens", expected="an answer")
    fetched = lab.issuer.fetches("jwks")
    if fetched > MAX_JWKS_FETCHES:
        raise violation(f"{BURST} requests with {tokens} tokens fetched the JWKS {fetched} times",
                        received=f"{fetched} JWKS fetches in {time.monotonic() - started:.1f} s",
                        expected=f"at most {MAX_JWKS_FETCHES}: cache the JWKS for its TTL ({TTL} s here)"
                                 + ("" if tokens == "valid" else " and rate-limit refetches for unknown kids"),
                        response=last, details=lab.log_tail())


_FAULTS: dict[str, tuple[str, Callable[[Issuer], None]]] = {
    "status-500": ("answers 500", lambda issuer: issuer.faults.jwks_status(500)),
    "slow": (f"answers after {HANG_SECONDS + 5:.0f} s", lambda issuer: issuer.faults.jwks_delay(HANG_SECONDS + 5)),
    "garbage": ("answers 200 with a truncated body", lambda issuer: issuer.faults.jwks_garbage("truncated")),
    "issuer-down": ("is unreachable (port closed)", lambda issuer: issuer.go_down()),
}


@pytest.mark.contract("AUTH-JWKS-UNAVAILABLE", level=MUST)
@pytest.mark.parametrize("fault", _FAULTS)
def test_keycloak_trouble_is_401_or_503(fresh_lab: Lab, fault: str) -> None:
    """While the JWKS endpoint fails — 500, slower than any sane timeout, garbage, or Keycloak's port
    closed — requests the backend must verify (a fresh unknown kid, a valid token once the cached JWKS
    expires) answer 401 or 503 (a valid token may still pass on cached keys): never 500, never a hang.
    Once Keycloak is back, valid tokens are accepted again without a restart.

    CONVENTIONS, Auth (JWKS) and Error Handling (structured responses); RFC 9110 §15.6.4 (503).
    """
    lab = fresh_lab
    what, apply = _FAULTS[fault]
    valid = lab.token()
    loaded = lab.last_jwks_fetch() or time.time()
    started = time.time()
    # The backend tries the JWKS at once for an unknown kid (after its refetch cooldown), at the latest
    # when its cached copy expires; watch until it did (a fetch seen, or a 503), then one more round.
    deadline = max(started + 1.5, loaded + TTL + 0.5)
    apply(lab.issuer)
    try:
        tried = False
        while True:
            for token, kind in ((lab.unknown_kid_token(), "an unknown kid"), (valid, "a valid token")):
                response = lab.caller.send(bearer(token), title=f"while the JWKS {what}, a request with {kind}",
                                           expected="401 or 503", details=lab.log_tail())
                status = response.status_code
                ok = status in (401, 503) or (kind == "a valid token" and lab.is_accepted(response))
                if not ok:
                    raise violation(f"while the JWKS {what}, a request with {kind} answered {status}",
                                    received=str(status),
                                    expected="401 or 503" + (" (or 2xx on cached keys)" if kind == "a valid token"
                                                             else ""),
                                    response=response, details=lab.log_tail())
                tried_now = status == 503
            if tried or time.time() >= deadline:
                break
            tried = tried_now or lab.jwks_fetched_since(started)
            time.sleep(0.1)
    finally:
        lab.issuer.faults.clear()
        if not lab.issuer.is_up:
            lab.issuer.come_up()
    expect_eventually(lab.get(lab.token()), lab.is_accepted, timeout=SETTLE_SECONDS,
                      title=f"after the JWKS {what} and recovered, valid tokens were still refused",
                      expected=f"2xx again within {SETTLE_SECONDS:.0f} s, without a restart")
