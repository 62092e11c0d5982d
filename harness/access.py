"""Who may call what: the operation a plain valid token may call (the AUTH probe) and the operations that
need a role, found the way a client finds them (SPEC §5, "Discover before asking").

Settings win: `auth_probe` names the probe, `[[roles]]` the role-protected operations. Otherwise roles come
from the OpenAPI security scopes (FastAPI publishes `Security(..., scopes=["admin"])` as
`security: [{"HTTPBearer": ["admin"]}]`), and the probe is the first secured operation without parameters
that answers a plain valid token with 2xx: real backends often list admin routes first, and a correct 403
there says nothing about authentication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .openapi import OpenAPIDoc, Operation
from .target.settings import RoleRule, TargetSettings, parse_operation

__all__ = ["ProbeChoice", "role_rules", "rule_for", "probe_candidates", "choose_probe"]

# Candidates tried with a plain token before giving up: each is one request, and the first 2xx wins.
MAX_PROBES = 12


@dataclass(frozen=True)
class ProbeChoice:
    """The AUTH probe and how it was chosen; ``tried`` lists `METHOD /path → status` of the refusals."""

    operation: Operation
    source: str  # "settings", "discovered", "fallback" (nothing answered 2xx) or "listed" (untried)
    tried: tuple[str, ...] = ()

    def describe(self) -> str:
        op = f"{self.operation.method} {self.operation.path}"
        if self.source == "settings":
            return f"{op} (auth_probe in the settings)"
        if self.source == "listed":
            return f"{op} (the first secured operation of the document)"
        if self.source == "discovered":
            refused = f"; refused first: {', '.join(self.tried)}" if self.tried else ""
            return f"{op} (the first secured operation a plain token may call{refused})"
        return (f"{op} (no secured operation answered a plain token with 2xx: {', '.join(self.tried)}; "
                "name one with auth_probe = \"GET /api/v1/...\" or give the token roles with token_roles)")


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


def probe_candidates(doc: OpenAPIDoc, rules: tuple[RoleRule, ...]) -> list[Operation]:
    """Secured operations a plain token may call, most likely first: GETs without parameters or body,
    never one that a role rule says needs a role."""
    secured = [op for op in doc.operations if op.secured and rule_for(op, rules) is None]
    return sorted(secured, key=lambda op: (op.method != "GET", "{" in op.path, op.has_body, op.path))


def choose_probe(doc: OpenAPIDoc, settings: TargetSettings, rules: tuple[RoleRule, ...],
                 status_with_token: Callable[[Operation], int | None] | None) -> ProbeChoice | None:
    """The AUTH probe, or None when the document has no secured operation. ``status_with_token`` sends a
    plain valid token to an operation (None: no answer); without it (a backend that does not trust the
    harness's tokens) the first candidate is taken untried."""
    if settings.auth_probe:
        method, path = parse_operation(settings.auth_probe)
        found = next((op for op in doc.operations if op.method == method and op.path == path), None)
        return ProbeChoice(found or Operation(path, method, True, False, {}), "settings")
    candidates = probe_candidates(doc, rules)
    if not candidates:
        return None
    if status_with_token is None:
        return ProbeChoice(candidates[0], "listed")
    tried: list[str] = []
    for op in candidates[:MAX_PROBES]:
        if op.has_body or "{" in op.path:
            break  # a 4xx there may be the input, not the token: only plain GETs tell
        status = status_with_token(op)
        if status is not None and 200 <= status < 300:
            return ProbeChoice(op, "discovered", tuple(tried))
        tried.append(f"{op.method} {op.path} → {status if status is not None else 'no answer'}")
    return ProbeChoice(candidates[0], "fallback" if tried else "discovered", tuple(tried))
