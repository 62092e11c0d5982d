"""AUTH: Keycloak bearer tokens — 401 without a valid one, 403 without the role, refused bad and mutated
tokens, keys only from the realm's JWKS (CONVENTIONS: Auth; RFC 6750; RFC 8725). The JWKS lifecycle
(rotation, caching, Keycloak trouble) is in test_auth_keys.py."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import seed as hypothesis_seed
from makrx_contracts.harness.backend.resolve import TargetSpec
from makrx_contracts.harness.backend.settings import RoleRule
from makrx_contracts.harness.contract import MUST, SHOULD, expect, expect_status, violation
from makrx_contracts.harness.issuer import Issuer
from makrx_contracts.harness.issuer.catalogue import ACCEPT, CATALOGUE, BadTokens, get
from makrx_contracts.harness.issuer.fixtures import TokenMaker
from makrx_contracts.harness.issuer.mutations import Mutation, MutationPlan, mutation_plans
from makrx_contracts.harness.ports import SourceAddresses

from .access import ProbeChoice, role_rules
from .bearer import (
    HANG_SECONDS,
    Caller,
    ValidTokenCheck,
    accepted,
    bearer,
    challenges_bearer,
)
from .errorshape import parse_error_body
from .openapi import OpenAPIDoc, Operation
from .rawhttp import raw_request

# -n hands this module out early (harness/scheduler.py): its contracts wait on timers.
pytestmark = [pytest.mark.auth, pytest.mark.long(1)]

MUTATION_EXAMPLES = 30
NO_SUCH_ROLE = "makrx-contract-no-such-role"


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def no_token_answer(caller: Caller) -> httpx.Response:
    """The answer to a request without credentials, once (what MALFORMED and INVALID-TOKEN-RESPONSE compare with)."""
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
def test_no_bearer_token_is_401_with_a_bearer_challenge(
    caller: Caller, make_token: TokenMaker, makrx_target_spec: TargetSpec, credentials: str
) -> None:
    """A protected operation called without a Bearer token — no Authorization header, an empty one, or
    another scheme (Basic, `Token <jwt>`) — answers 401 with `WWW-Authenticate: Bearer`.

    CONVENTIONS, Auth (Keycloak SSO, JWT validation); RFC 6750 §3; RFC 9110 §11.6.1 and §15.5.2.
    """
    template = _NON_BEARER[credentials]
    token = make_token() if not makrx_target_spec.is_url else "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
    authorization = None if template is None else template.format(token=token)
    response = caller.send(authorization, title=f"a request with {credentials} credentials", expected="401")
    if response.status_code == 403:
        raise violation(
            "a request without a Bearer token got 403, not 401",
            received=f"403 for {credentials} credentials",
            expected="401 with WWW-Authenticate: Bearer (403 means: known caller, no permission)",
            response=response,
            details="Older FastAPI versions' HTTPBearer() (auto_error=True) answer 403 here: use "
            "HTTPBearer(auto_error=False) and raise 401 with WWW-Authenticate: Bearer yourself.",
        )
    expect(
        response.status_code == 401 and challenges_bearer(response),
        f"a request with {credentials} credentials was not a 401 Bearer challenge",
        received=f"{response.status_code}, WWW-Authenticate {response.headers.get('www-authenticate')!r}",
        expected="401 with WWW-Authenticate: Bearer",
        response=response,
    )


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
def test_a_malformed_authorization_header_is_401(
    caller: Caller,
    make_token: TokenMaker,
    no_token_answer,
    makrx_target_spec: TargetSpec,
    makrx_source_addresses: SourceAddresses,
    header: str,
) -> None:
    """A malformed Authorization header — "Bearer" alone or with blanks, two tokens, a comma list, no
    space, a bare token, garbage — answers 401: never 2xx (a valid token inside does not make it valid),
    never 5xx.

    CONVENTIONS, Auth; RFC 6750 §2.1 (`Authorization: Bearer 1*b64token`); RFC 9110 §11.6.2.
    """
    if no_token_answer.status_code != 401:
        pytest.skip(
            f"precondition: a request without credentials already answers {no_token_answer.status_code} "
            "(see AUTH-NO-TOKEN)"
        )
    token = make_token() if not makrx_target_spec.is_url else "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
    value = _MALFORMED[header].format(token=token)
    op = caller.op
    if value != value.strip() and op.method == "GET" and not op.has_body:
        # httpx refuses to send a header value with trailing blanks: send the bytes ourselves.
        raw = raw_request(
            caller.base_url,
            op.url(),
            [b"Authorization: " + value.encode()],
            source_address=makrx_source_addresses.next(),
            timeout=HANG_SECONDS,
        )
        if raw.status != 401:
            raise violation(
                f"a malformed Authorization header ({header}) was not refused with 401",
                received=str(raw.status or "no answer"),
                expected="401",
                details="Raw exchange (the token is a harness test token):\n" + raw.render(),
            )
        return
    response = caller.send(value.strip(), title=f"a malformed Authorization header ({header})", expected="401")
    expect_status(response, 401, f"a malformed Authorization header ({header}) was not refused with 401")


@pytest.mark.contract("AUTH-VALID-TOKEN", level=MUST)
def test_a_valid_token_is_accepted(
    trusted: None, caller: Caller, make_token: TokenMaker, auth_probe: ProbeChoice
) -> None:
    """A valid access token, as Keycloak issues it for this service (RS256, kid, iss, aud = client id,
    typ Bearer), gets past authentication: 2xx from the protected operation a plain token may call.

    CONVENTIONS, Auth: "Keycloak SSO (realm makrx), JWT (RS256) validation".
    """
    response = caller.send(bearer(make_token()), title="a valid token", expected="2xx")
    expect(
        accepted(caller.op, response),
        "a valid access token was refused",
        received=str(response.status_code),
        expected=f"2xx from {caller.op.method} {caller.op.path}",
        response=response,
        details=f"Probe: {auth_probe.describe()}",
    )


@pytest.mark.contract("AUTH-SCHEME-CASE", level=SHOULD)
@pytest.mark.parametrize("scheme", ("bearer", "BEARER"))
def test_the_bearer_scheme_is_case_insensitive(
    trusted: None, caller: Caller, make_token: TokenMaker, valid_token: ValidTokenCheck, scheme: str
) -> None:
    """The authentication scheme name is case-insensitive: `bearer <token>` is as good as `Bearer <token>`.

    RFC 9110 §11.1 ("case-insensitive token"); RFC 6750 §2.1.
    """
    valid_token.require()
    response = caller.send(f"{scheme} {make_token()}", title=f"a valid token with scheme {scheme!r}", expected="2xx")
    expect(
        accepted(caller.op, response),
        f"a valid token with the scheme written {scheme!r} was refused",
        received=str(response.status_code),
        expected="2xx, as for 'Bearer'",
        response=response,
    )


# ---------------------------------------------------------------------------------------------- bad tokens


@dataclass
class CatalogueAnswers:
    """Each catalogue case's answer from the target, fetched once and shared by AUTH-BAD-TOKEN[case] and
    the property contract's precondition."""

    bad_token: BadTokens
    issuer: Issuer
    caller: Caller
    make_token: TokenMaker
    _answers: dict[str, httpx.Response | str] = field(default_factory=dict)
    _valid: list[int | None] = field(default_factory=list)

    def valid_status(self) -> int | None:
        """What a valid token gets from the same operation (None: no answer): a bad token answered the same
        way was accepted, whatever the status."""
        if not self._valid:
            try:
                self._valid.append(self.caller.raw(bearer(self.make_token())).status_code)
            except httpx.TransportError:
                self._valid.append(None)
        return self._valid[0]

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
        """The MUST cases (AUTH-BAD-TOKEN's) that get the wrong answer."""
        return [
            case.name
            for case in CATALOGUE
            if case.level == "MUST" and case.applies(self.issuer) and not self.ok(case.name)
        ]


@pytest.fixture(scope="module")
def catalogue(bad_token: BadTokens, makrx_issuer: Issuer, caller: Caller, make_token: TokenMaker) -> CatalogueAnswers:
    return CatalogueAnswers(bad_token, makrx_issuer, caller, make_token)


@pytest.mark.contract("AUTH-BAD-TOKEN", level=MUST)
@pytest.mark.parametrize("case", [case.name for case in CATALOGUE if case.level == "MUST"])
def test_a_bad_token_is_refused(
    trusted: None, catalogue: CatalogueAnswers, valid_token: ValidTokenCheck, case: str
) -> None:
    """Every token of the bad-token catalogue that the issuer did not mean for this API gets the answer the
    catalogue states — 401 for expired, not yet valid, wrong iss/aud/typ, tampered or stripped signatures,
    alg none/HS256 key confusion, injected kid with a forged signature, jku/x5u/jwk headers, retired keys,
    malformed or oversized tokens (400/413/431 allowed there) — never 2xx, never 5xx, within HANG_SECONDS.
    The one valid control (aud list with ours) is accepted. Clock leeway: at most LEEWAY (60 s); the
    *_beyond_leeway cases sit 5 s past it.

    CONVENTIONS, Auth: "JWT (RS256) validation", "Validate issuer; audience verification"; RFC 8725 §3.1
    (algorithms), §3.8-3.9 (iss, aud), §3.10 (kid, jku, x5u), §3.11 (typ).
    """
    _judge_bad_token(catalogue, valid_token, case)


@pytest.mark.contract("AUTH-STRICT-TOKEN", level=SHOULD)
@pytest.mark.parametrize("case", [case.name for case in CATALOGUE if case.level == "SHOULD"])
def test_an_odd_token_of_the_issuer_is_refused(
    trusted: None, catalogue: CatalogueAnswers, valid_token: ValidTokenCheck, case: str
) -> None:
    """A token only the trusted issuer could have signed — its own active key, unexpired, meant for us —
    but with an oddity a strict verifier refuses: a missing, null or numeric-string exp, a future iat, an
    unknown crit, a kid the realm never published or of another type, PS256/RS512 by the RSA key, duplicate
    members. 401 (never 5xx). Accepting one opens the API to nobody new, so this is SHOULD:
    python-jose and hand-rolled verifiers accept several of them.

    RFC 7519 §2 (NumericDate), §4.1.4 (exp); RFC 7515 §4.1.11 (crit), §5.2 (duplicate members); RFC 8725
    §3.1 (algorithms), §3.10 (kid); CONVENTIONS, Auth: "select by kid".
    """
    _judge_bad_token(catalogue, valid_token, case)


def _judge_bad_token(catalogue: CatalogueAnswers, valid_token: ValidTokenCheck, case: str) -> None:
    """Fail unless catalogue ``case`` got its verdict, in words that tell accepted from crashed."""
    found = get(case)
    if not found.applies(catalogue.issuer):
        pytest.skip(f"{case} does not apply to a {catalogue.issuer.algorithm} issuer")
    if found.verdict is ACCEPT:
        valid_token.require()
    answer = catalogue.answer(case)
    why = (
        "only the issuer could have signed it: accepting it is lenient, not an opening"
        if found.issuer_only
        else "accepting it lets in a token the issuer did not mean for this API"
    )
    details = f"Case {case}: {found.description}\nLevel: {found.level} ({why}).\nFix: {found.hint}"
    if isinstance(answer, str):
        raise violation(
            f"the {case} token got no answer",
            received=answer,
            expected=f"{found.verdict}, within {HANG_SECONDS:.0f} s",
            details=details,
        )
    status = answer.status_code
    if found.verdict.allows(status):
        return
    valid = catalogue.valid_status()
    if valid is not None and valid >= 500 and status == valid:
        pytest.skip(
            f"precondition: a valid token gets {valid} from {catalogue.caller.op.method} "
            f"{catalogue.caller.op.path} too, so this {status} cannot show whether the {case} token was "
            "checked (see AUTH-VALID-TOKEN)"
        )
    if found.verdict is ACCEPT:
        title = f"the valid {case} token was refused"
    elif 200 <= status < 300:
        title = f"the {case} token was accepted"
    elif status == valid:
        title = f"the {case} token was accepted: it got what a valid token gets ({valid}), not 401"
    elif status >= 500 and valid is not None and 200 <= valid < 300:
        title = f"the {case} token crashed the backend (a valid token gets {valid})"
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
    return (
        "2xx, or 401 (a strict reading may refuse it); never 5xx"
        if mutation.ambiguous
        else "2xx: the mutation leaves the token valid"
    )


@pytest.mark.contract("AUTH-MUTATED-TOKEN", level=MUST)
def test_mutated_tokens_get_the_right_answer(
    trusted: None,
    caller: Caller,
    makrx_issuer: Issuer,
    makrx_config,
    makrx_client_id: str,
    makrx_token_roles: tuple[str, ...],
    catalogue: CatalogueAnswers,
    valid_token: ValidTokenCheck,
) -> None:
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
        pytest.skip(
            f"precondition: the bad-token catalogue already fails ({', '.join(failing[:4])}"
            f"{', ...' if len(failing) > 4 else ''}; see AUTH-BAD-TOKEN)"
        )
    seed = makrx_config.seed if makrx_config.seed is not None else random.getrandbits(32)
    audience = makrx_client_id

    unanswered: list[tuple[str, str]] = []  # (details, what happened): reported after the run, unshrunk

    def check(plan: MutationPlan) -> None:
        if unanswered:
            return  # shrinking through requests that each wait HANG_SECONDS would take minutes
        mutation = plan.apply(makrx_issuer, audience, makrx_token_roles)
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
        raise violation(
            title, received=str(status), expected=_mutation_verdict(mutation), response=response, details=details
        )

    run = given(plan=mutation_plans())(check)
    for plan in reversed(_PINNED_MUTATIONS):
        run = example(plan=plan)(run)
    run = settings(
        max_examples=MUTATION_EXAMPLES,
        database=None,
        deadline=None,
        print_blob=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )(run)
    hypothesis_seed(seed)(run)()
    if unanswered:
        details, received = unanswered[0]
        raise violation(
            "a mutated token got no answer", received=received, expected="an answer (401 or 2xx)", details=details
        )


@pytest.mark.contract("AUTH-INVALID-TOKEN-RESPONSE", level=MUST)
def test_a_refused_token_gets_a_shaped_401_challenge(
    trusted: None, caller: Caller, make_token: TokenMaker, no_token_answer: httpx.Response
) -> None:
    """The 401 for a token that fails validation (here: expired) has what every 401 owes its caller: a
    Bearer challenge in `WWW-Authenticate` and the error shape with the request id. Token checks often
    raise on their own path, past the handler that shapes the rest. (Gaps the 401 without a token shares
    are AUTH-NO-TOKEN's and ERR-SHAPE's; only the invalid token's own are judged here.)

    CONVENTIONS, Error Handling ("structured responses, add a request id"); RFC 6750 §3.1 (invalid_token);
    RFC 9110 §11.6.1.
    """
    response = caller.send(bearer(make_token(expires_in=-3600)), title="an expired token", expected="401")
    if response.status_code != 401:
        pytest.skip(f"precondition: an expired token answered {response.status_code} (see AUTH-BAD-TOKEN[expired])")
    problems = _challenge_gaps(response)
    no_token = no_token_answer
    shared = set(_challenge_gaps(no_token)) if no_token.status_code == 401 else set()
    own = [problem for problem in problems if problem not in shared]
    if problems and not own:
        pytest.skip(
            f"precondition: the 401 without a token has the same gaps ({'; '.join(problems)}): see "
            "AUTH-NO-TOKEN, ERR-SHAPE"
        )
    expect(
        not own,
        "the 401 for an invalid token lacks the challenge or the error shape",
        received="; ".join(own)
        + (f" (WWW-Authenticate: {response.headers.get('www-authenticate')!r})" if _NO_CHALLENGE in own else ""),
        expected='WWW-Authenticate: Bearer (error="invalid_token") and a JSON body with code, message and '
        "the request id",
        response=[response, no_token],
    )


_NO_CHALLENGE = "no Bearer challenge in WWW-Authenticate"


def _challenge_gaps(response: httpx.Response) -> list[str]:
    """What a 401 lacks: the error shape's parts, the Bearer challenge."""
    return [*parse_error_body(response).problems, *([] if challenges_bearer(response) else [_NO_CHALLENGE])]


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
    expect(
        not hits,
        "the backend fetched a URL named in a token header",
        received="; ".join(f"{hit.method} {hit.path} from {hit.client_ip} ({hit.user_agent})" for hit in hits),
        expected="no request to the jku/x5u server: keys only from the realm's JWKS",
        response=[a for a in answers if not isinstance(a, str)],
    )


# ---------------------------------------------------------------------------------------------- roles


def _rule_url(rule: RoleRule, doc: OpenAPIDoc | None) -> tuple[str, bool]:
    """The concrete path of a role rule (parameters filled from the OpenAPI types) and whether it takes a body."""
    op = next((o for o in (doc.operations if doc else []) if o.path == rule.path and o.method == rule.method), None)
    if op is None:
        return Operation(rule.path, rule.method, True, False, {}).url(), False
    return op.url(), op.has_body


def _role_rules(spec: TargetSpec, doc: OpenAPIDoc | None) -> tuple[RoleRule, ...]:
    rules = role_rules(doc, spec.settings)
    if not rules:
        pytest.skip(
            "no role-protected endpoint known: no OpenAPI security requirement names scopes, and no "
            "[[roles]] path/method/roles in [tool.makrx-contract]"
        )
    return rules


@pytest.mark.contract("AUTH-ROLE-FORBIDDEN", level=MUST)
def test_a_missing_role_is_403(
    trusted: None,
    caller: Caller,
    make_token: TokenMaker,
    openapi: OpenAPIDoc | None,
    makrx_target_spec: TargetSpec,
    valid_token: ValidTokenCheck,
) -> None:
    """A valid token without the role an endpoint needs answers 403 Forbidden, not 401: the caller is
    authenticated, just not allowed.

    CONVENTIONS, Auth: "role/scope helpers in dependencies.py"; RFC 9110 §15.5.4; RFC 6750 §3.1
    (insufficient_scope).
    """
    valid_token.require()
    for rule in _role_rules(makrx_target_spec, openapi):
        path, body = _rule_url(rule, openapi)
        token = make_token(roles=(NO_SUCH_ROLE,), client_roles={})
        response = caller.send(
            bearer(token),
            method=rule.method,
            path=path,
            body=body,
            title=f"{rule.method} {rule.path} without a role",
            expected="403",
        )
        if response.status_code == 401:
            raise violation(
                f"{rule.method} {rule.path} answered 401 to a valid token that lacks the role",
                received="401 (re-authenticate)",
                expected=f"403: the caller is known but lacks {' / '.join(rule.roles)}",
                response=response,
            )
        expect_status(response, 403, f"{rule.method} {rule.path} did not forbid a caller without the role")


@pytest.mark.contract("AUTH-ROLE-SOURCES", level=MUST)
@pytest.mark.parametrize("source", ("realm_access", "resource_access"))
def test_roles_count_from_realm_and_client(
    trusted: None,
    caller: Caller,
    make_token: TokenMaker,
    openapi: OpenAPIDoc | None,
    makrx_target_spec: TargetSpec,
    valid_token: ValidTokenCheck,
    source: str,
) -> None:
    """A required role is granted whether Keycloak puts it in `realm_access.roles` (realm role) or in
    `resource_access.<client id>.roles` (client role of this service).

    CONVENTIONS, Auth: "Keycloak SSO (realm makrx) ...; role/scope helpers in dependencies.py".
    """
    valid_token.require()
    client_id = makrx_target_spec.client_id
    grants = {
        "realm_access": lambda roles: make_token(roles=roles, client_roles={}),
        "resource_access": lambda roles: make_token(roles=(), client_roles={client_id: roles}),
    }
    for rule in _role_rules(makrx_target_spec, openapi):
        path, body = _rule_url(rule, openapi)

        def call(where: str, rule: RoleRule = rule, path: str = path, body: Any = body) -> httpx.Response:
            return caller.send(
                bearer(grants[where](rule.roles)),
                method=rule.method,
                path=path,
                body=body,
                title=f"{rule.method} {rule.path} with the role in {where}",
                expected="access",
            )

        response = call(source)
        status = response.status_code
        granted = f"{', '.join(rule.roles)} in " + (
            "realm_access.roles" if source == "realm_access" else f"resource_access.{client_id}.roles"
        )
        expect(
            status not in (401, 403),
            f"a role granted in {source} was not honoured by {rule.method} {rule.path}",
            received=f"{status} with {granted}",
            expected="access (2xx, or a non-auth 4xx such as 404)",
            response=response,
        )
        if status >= 500:
            # Past the role check the endpoint itself may fail (e.g. its table is missing): that says
            # nothing about roles, unless a caller with the realm role gets through where this one did not.
            baseline = response if source == "realm_access" else call("realm_access")
            if baseline.status_code >= 500:
                pytest.skip(
                    f"precondition: {rule.method} {rule.path} answers {baseline.status_code} even to a "
                    "caller with the role, so it cannot show whether the role counted"
                )
            raise violation(
                f"a role granted in {source} crashed {rule.method} {rule.path}",
                received=f"{status} with {granted}",
                expected=f"what a realm role gets ({baseline.status_code})",
                response=[baseline, response],
            )


# Where a role must NOT count, and how a token carries it there (Keycloak never grants through these).
OTHER_CLIENT = "makrx-contract-other-client"
_ELSEWHERE: dict[str, tuple[str, Callable[[tuple[str, ...]], dict[str, Any]]]] = {
    "other_client": (f"resource_access.{OTHER_CLIENT}.roles", lambda roles: {"client_roles": {OTHER_CLIENT: roles}}),
    "top_level_roles": ("a top-level roles claim", lambda roles: {"overrides": {"roles": list(roles)}}),
    "groups": ("the groups claim", lambda roles: {"overrides": {"groups": [*roles, *(f"/{r}" for r in roles)]}}),
    "scope": ("the scope claim", lambda roles: {"scope": " ".join(("openid", "profile", "email", *roles))}),
}


@pytest.mark.contract("AUTH-ROLE-SOURCES", level=MUST)
@pytest.mark.parametrize("source", tuple(_ELSEWHERE))
def test_a_role_anywhere_else_opens_nothing(
    trusted: None,
    caller: Caller,
    make_token: TokenMaker,
    openapi: OpenAPIDoc | None,
    makrx_target_spec: TargetSpec,
    valid_token: ValidTokenCheck,
    source: str,
) -> None:
    """Roles count only from `realm_access.roles` and `resource_access.<this client>.roles`: the required
    role under another client's `resource_access`, in a top-level `roles` or `groups` claim, or in `scope`
    does not open a role-protected operation. Anything but 401/403 there is privilege escalation: another
    client's roles, or claims a mapper lets users shape, would grant this API's roles.

    CONVENTIONS, Auth: "Keycloak SSO (realm makrx)"; Keycloak's token layout (realm and client roles).
    """
    valid_token.require()
    where, carry = _ELSEWHERE[source]
    for rule in _role_rules(makrx_target_spec, openapi):
        path, body = _rule_url(rule, openapi)
        token = make_token(roles=(NO_SUCH_ROLE,), **{"client_roles": {}, **carry(rule.roles)})
        response = caller.send(
            bearer(token),
            method=rule.method,
            path=path,
            body=body,
            title=f"{rule.method} {rule.path} with {', '.join(rule.roles)} in {where}",
            expected="403",
        )
        expect(
            response.status_code in (401, 403),
            f"{', '.join(rule.roles)} in {where} opened {rule.method} {rule.path}: privilege escalation",
            received=f"{response.status_code} (past the role check)",
            expected="403: roles count only from realm_access and resource_access of this client",
            response=response,
        )
