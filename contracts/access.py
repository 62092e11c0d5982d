"""Who may call what: the operation a plain valid token may call (the AUTH probe) and the operations that
need a role, found the way a client finds them (SPEC §5, "Discover before asking").

Settings win: `auth_probe` names the probe, `[[roles]]` the role-protected operations. Otherwise roles come
from the OpenAPI security scopes (FastAPI publishes `Security(..., scopes=["admin"])` as
`security: [{"HTTPBearer": ["admin"]}]`), and the probe is the first secured operation without parameters
that answers a plain valid token with 2xx: real backends often list admin routes first, and a correct 403
there says nothing about authentication.

An operation is secured when the document's `security` says so, when `[[roles]]` or `auth_probe` name it, or
when asking shows it (`find_protection`): many services read the Authorization header by hand, or through a
dependency FastAPI does not publish, and their documents declare no security at all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from makrx_contracts.harness.backend.settings import RoleRule, TargetSettings, parse_operation

from .openapi import OpenAPIDoc, Operation

__all__ = [
    "ProbeChoice",
    "Protection",
    "Status",
    "choose_probe",
    "find_protection",
    "is_health_path",
    "operation_key",
    "probe_candidates",
    "role_rules",
    "rule_for",
]

# Candidates tried with a plain token before giving up: each is one request, and the first 2xx wins.
MAX_PROBES = 12
# Undeclared GETs asked whether they need a token: one request each without a token, one more if refused.
MAX_ASKED = 12

Status = Callable[[Operation], int | None]  # one request's status (None: no answer)


def is_health_path(path: str) -> bool:
    return "health" in path or path.endswith(("/live", "/ready", "/readyz", "/livez", "/metrics"))


def _said(status: int | None) -> str:
    return "no answer" if status is None else str(status)


def operation_key(op: Operation) -> str:
    """`METHOD /path`, as settings name operations."""
    return f"{op.method} {op.path}"


@dataclass(frozen=True)
class Protection:
    """Which operations need a token beyond what the document declares: role rules, the `auth_probe` setting,
    and the undeclared GETs found protected by asking (``found``; ``asked`` lists every answer, for messages)."""

    rules: tuple[RoleRule, ...]
    named: frozenset[str] = frozenset()  # `METHOD /path` of auth_probe and ``found``
    found: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()

    def secured(self, op: Operation) -> bool:
        return op.secured or operation_key(op) in self.named or rule_for(op, self.rules) is not None

    def operations(self, doc: OpenAPIDoc) -> list[Operation]:
        """The document's operations, ``secured`` wherever this protection says so."""
        return [replace(op, secured=True) if not op.secured and self.secured(op) else op for op in doc.operations]


def find_protection(
    doc: OpenAPIDoc, settings: TargetSettings, rules: tuple[RoleRule, ...], anonymous: Status, with_token: Status | None
) -> Protection:
    """Ask the undeclared GETs without parameters under /api (health paths aside, at most MAX_ASKED) the way a
    client finds out: one answering 401/403 without credentials and 2xx to a plain valid token is protected
    (refused with the token too, it checks something else, or does not trust the harness's issuer). Without
    ``with_token`` (a backend that does not trust the harness's tokens) a 401 without credentials suffices.
    Operations a role rule or `auth_probe` names are protected already and not asked."""
    named = {" ".join(parse_operation(settings.auth_probe))} if settings.auth_probe else set()
    known = Protection(rules, frozenset(named))
    candidates = [
        op
        for op in doc.operations
        if op.method == "GET"
        and "{" not in op.path
        and op.path.startswith("/api")
        and not is_health_path(op.path)
        and not known.secured(op)
    ]
    found: list[str] = []
    asked: list[str] = []
    for op in candidates[:MAX_ASKED]:
        before = anonymous(op)
        if with_token is None or before not in (401, 403):
            asked.append(f"{operation_key(op)} → {_said(before)} without a token")
            if with_token is None and before == 401:
                found.append(operation_key(op))
            continue
        after = with_token(op)
        asked.append(f"{operation_key(op)} → {_said(before)} without a token, {_said(after)} with one")
        if after is not None and 200 <= after < 300:
            found.append(operation_key(op))
    return Protection(rules, frozenset(named | set(found)), tuple(found), tuple(asked))


@dataclass(frozen=True)
class ProbeChoice:
    """The AUTH probe and how it was chosen; ``tried`` lists `METHOD /path → status` of the refusals."""

    operation: Operation
    source: str  # "settings", "discovered", "fallback" (nothing answered 2xx) or "listed" (untried)
    tried: tuple[str, ...] = ()
    found: tuple[str, ...] = ()  # operations found protected by asking: the document declares no security there

    def describe(self) -> str:
        op = f"{self.operation.method} {self.operation.path}"
        asked = (
            f"; found protected by asking, undeclared in the OpenAPI document: {', '.join(self.found)}"
            if self.found
            else ""
        )
        if self.source == "settings":
            return f"{op} (auth_probe in the settings)"
        if self.source == "listed":
            return f"{op} (the first secured operation of the document{asked})"
        if self.source == "discovered":
            refused = f"; refused first: {', '.join(self.tried)}" if self.tried else ""
            return f"{op} (the first secured operation a plain token may call{refused}{asked})"
        return (
            f"{op} (no secured operation answered a plain token with 2xx: {', '.join(self.tried)}{asked}; "
            'name one with auth_probe = "GET /api/v1/..." or give the token roles with token_roles)'
        )


def role_rules(doc: OpenAPIDoc | None, settings: TargetSettings) -> tuple[RoleRule, ...]:
    """`[[roles]]` from the settings, then every operation whose security requirement names scopes."""
    rules = list(settings.roles)
    configured = {(rule.method, rule.path) for rule in rules}
    for op in doc.operations if doc else []:
        if op.scopes and (op.method, op.path) not in configured:
            rules.append(RoleRule(path=op.path, method=op.method, roles=op.scopes))
    return tuple(rules)


def rule_for(op: Operation, rules: tuple[RoleRule, ...]) -> RoleRule | None:
    return next((rule for rule in rules if rule.method == op.method and rule.path == op.path), None)


def probe_candidates(doc: OpenAPIDoc, rules: tuple[RoleRule, ...], found: Collection[str] = ()) -> list[Operation]:
    """Secured operations (declared, or ``found`` protected by asking) a plain token may call, most likely
    first: GETs without parameters or body, never one that a role rule says needs a role."""
    secured = [
        replace(op, secured=True)
        for op in doc.operations
        if (op.secured or operation_key(op) in found) and rule_for(op, rules) is None
    ]
    return sorted(secured, key=lambda op: (op.method != "GET", "{" in op.path, op.has_body, op.path))


def choose_probe(
    doc: OpenAPIDoc,
    settings: TargetSettings,
    rules: tuple[RoleRule, ...],
    status_with_token: Status | None,
    found: tuple[str, ...] = (),
) -> ProbeChoice | None:
    """The AUTH probe, or None when no operation is secured (declared, or ``found`` protected by asking).
    ``status_with_token`` sends a plain valid token to an operation (None: no answer); without it (a backend
    that does not trust the harness's tokens) the first candidate is taken untried."""
    if settings.auth_probe:
        method, path = parse_operation(settings.auth_probe)
        named = next((op for op in doc.operations if op.method == method and op.path == path), None)
        return ProbeChoice(
            replace(named, secured=True) if named else Operation(path, method, True, False, {}), "settings"
        )
    candidates = probe_candidates(doc, rules, found)
    if not candidates:
        return None
    if status_with_token is None:
        return ProbeChoice(candidates[0], "listed", found=found)
    tried: list[str] = []
    for op in candidates[:MAX_PROBES]:
        if op.has_body or "{" in op.path:
            break  # a 4xx there may be the input, not the token: only plain GETs tell
        status = status_with_token(op)
        if status is not None and 200 <= status < 300:
            return ProbeChoice(op, "discovered", tuple(tried), found)
        tried.append(f"{operation_key(op)} → {_said(status)}")
    return ProbeChoice(candidates[0], "fallback" if tried else "discovered", tuple(tried), found)
