"""The ``token`` and ``replay`` commands against a running standalone issuer (``serve``): one case's token, or the
bad-token catalogue replayed against one operation of a backend that trusts it (``replay --rotate`` is rotation.py).

A case that needs a key state (two published signing keys) is prepared by the issuer; the replay restores the keys
(``POST /admin/keys/reset``) right after sending that case's token.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, TextIO

from makrx_contracts.harness.errors import TargetError

from . import catalogue
from .remote import DEFAULT_ISSUER, Answer, Backend, Issued, IssuerClient

__all__ = [
    "RATE_LIMITED",
    "Session",
    "curl_command",
    "exit_code",
    "judge",
    "list_cases",
    "open_session",
    "print_table",
    "print_token",
    "replay",
]

RATE_LIMITED: Final = (
    "the backend's rate limit answered (429), not its token check: wait for its window, raise its limit, or send "
    "fewer requests (--case)"
)
"""Why a 429 judges nothing, and what to do about it."""


def expected_status(verdict: str, statuses: Iterable[int]) -> str:
    """``401``, ``400/401/413/431``, ``2xx``: a verdict's statuses in a table cell."""
    return "2xx" if verdict == catalogue.ACCEPT.name else "/".join(str(s) for s in sorted(statuses))


def curl_command(method: str, url: str, token: str) -> str:
    """A ready-to-paste curl command sending ``token`` as a Bearer token (quoted for POSIX shells)."""
    return shlex.join(["curl", "-sS", "-i", "-X", method, "-H", f"Authorization: Bearer {token}", url])


# ---------------------------------------------------------------------------------------------- replay and rotate


@dataclass
class Session:
    """The issuer and the backend operation of one run; ``start`` checks that the backend trusts the issuer."""

    issuer: IssuerClient
    backend: Backend
    audience: str | None
    out: TextIO
    valid_status: int = 0

    def valid(self) -> Issued:
        return self.issuer.token(audience=self.audience)

    def start(self) -> None:
        """Stop (TargetError) unless the backend accepts a valid token and refuses a request without one."""
        valid = self.valid()
        status = self.backend.send(valid.token, what="a valid token").status
        if status is None:
            raise TargetError(
                f"{self.backend.method} {self.backend.url} did not answer a valid token within "
                f"{self.backend.timeout:.0f} s",
                fix="see the backend's log",
            )
        if status in (401, 403):
            base, _, realm = valid.issuer.rpartition("/realms/")
            role = status == 403  # or the token is trusted and the operation wants a role
            raise TargetError(
                f"the backend refused a valid token of {valid.issuer} (aud {valid.audience}) with {status}: it does "
                f"not trust this issuer{', or the operation needs a role' if role else ''}",
                fix=f"start the backend with KEYCLOAK_URL={base} KEYCLOAK_REALM={realm} "
                f"KEYCLOAK_CLIENT_ID={valid.audience} (or pass --audience <its client id>)"
                + ("; or replay an operation any signed-in user may call" if role else ""),
            )
        if status == 429:
            raise TargetError("the backend answered 429 to a valid token", fix=RATE_LIMITED)
        if status >= 500:
            raise TargetError(
                f"the backend answered {status} to a valid token: bad tokens cannot be judged "
                "against an operation that fails anyway",
                fix="see the backend's log",
            )
        anonymous = self.backend.send(None, what="a request without a token").status
        if anonymous == status:
            raise TargetError(
                f"{self.backend.method} {self.backend.url} answers {status} without a token, as it does with a valid "
                "one: it does not ask for a token",
                fix="replay an operation that requires a token (the reference app's: GET /api/v1/me)",
            )
        self.valid_status = status
        print(
            f"a valid token: {status}; no token: {anonymous if anonymous is not None else 'no answer'}", file=self.out
        )


@contextmanager
def open_session(
    backend_url: str, method: str, issuer_url: str, audience: str | None, out: TextIO
) -> Iterator[Session]:
    """A session whose clients are closed on the way out."""
    issuer = IssuerClient(issuer_url)
    try:
        backend = Backend(backend_url, method)
        try:
            yield Session(issuer, backend, audience, out)
        finally:
            backend.close()
    finally:
        issuer.close()


def print_table(out: TextIO, rows: Sequence[tuple[str, ...]], widths: Sequence[int]) -> None:
    """Each row's cells left-aligned in columns ``widths`` wide, two blanks apart."""
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip(), file=out)


def exit_code(failed_levels: Sequence[str], strict: bool, out: TextIO) -> int:
    """1 when a MUST (with ``strict``: any) check failed, else 0, saying so when SHOULD failures did not count."""
    must = failed_levels.count("MUST")
    should = len(failed_levels) - must
    if must or (strict and should):
        return 1
    if should:
        print(f"{should} SHOULD failure{'s' * (should != 1)}: reported, exit 0 (--strict fails on them)", file=out)
    return 0


# ---------------------------------------------------------------------------------------------- token


def list_cases(out: TextIO) -> None:
    """Every catalogue case with its level and expected answer (offline: no issuer needed)."""
    width = max(len(case.name) for case in catalogue.CATALOGUE)
    rows = [("case", "level", "expected", "description")]
    rows += [
        (case.name, case.level, expected_status(case.verdict.name, case.verdict.statuses), case.description)
        for case in catalogue.CATALOGUE
    ]
    print_table(out, rows, (width, 6, 15, 0))


def print_token(case: str | None, *, issuer_url: str, audience: str | None, out: TextIO, err: TextIO) -> None:
    """The token alone on ``out`` (for ``$(...)``); what it is, and the key state it left, on ``err``."""
    if case is not None:
        catalogue.get(case)  # an unknown name fails here, with close matches, before any request
    client = IssuerClient(issuer_url)
    try:
        issued = client.token(case, audience)
    finally:
        client.close()
    print(issued.token, file=out)
    if issued.case is None:
        print(f"a valid token of {issued.issuer}, aud {issued.audience}", file=err)
        return
    print(
        f"{issued.case} ({issued.level}, aud {issued.audience}): {issued.description}\n"
        f"  expected: {issued.expected}\n  fix: {issued.hint}",
        file=err,
    )
    if issued.keys_changed:
        print(
            "  the issuer's keys now have the state this case needs; "
            f"`curl -X POST {client.base_url}/admin/keys/reset` restores them (replay does that itself)",
            file=err,
        )


# ---------------------------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Outcome:
    """One case's answer, judged against its verdict and against the valid token's answer."""

    issued: Issued
    got: str
    ok: bool
    why: str = ""


def judge(issued: Issued, answer: Answer, valid_status: int) -> Outcome:
    """A bad token answered as the valid token was is accepted, whatever the status (SPEC §5)."""
    status = answer.status
    if status is None:
        return Outcome(issued, answer.error, False, f"no answer: {answer.error}")
    if issued.accept:
        ok = 200 <= status < 300 or status == valid_status
        return Outcome(issued, str(status), ok, "" if ok else f"the valid {issued.case} token was refused ({status})")
    if status in issued.statuses and status != valid_status:
        return Outcome(issued, str(status), True)
    if 200 <= status < 300 or status == valid_status:
        return Outcome(
            issued,
            f"{status} accepted",
            False,
            f"the token was accepted: it got what a valid token gets ({valid_status})",
        )
    if status >= 500:
        return Outcome(
            issued, f"{status} crashed", False, f"the token crashed the backend (a valid token gets {valid_status})"
        )
    if status == 403:
        return Outcome(issued, "403", False, "403: a token that fails validation is 401 (RFC 6750 §3.1 invalid_token)")
    if status == 429:
        return Outcome(issued, "429 limited", False, RATE_LIMITED)
    return Outcome(issued, str(status), False, "the token was not refused with 401")


def replay(
    backend_url: str,
    *,
    method: str = "GET",
    issuer_url: str = DEFAULT_ISSUER,
    cases: Sequence[str] = (),
    audience: str | None = None,
    strict: bool = False,
    out: TextIO,
) -> int:
    """Send a valid token, then each case's token, to ``method backend_url``; print one row per case and, for
    each failure, the reason and a curl command. 0: every MUST case (with ``strict``, every case) as expected."""
    names = list(dict.fromkeys(cases)) or [case.name for case in catalogue.CATALOGUE]
    for name in names:
        catalogue.get(name)  # unknown names fail before any request
    with open_session(backend_url, method, issuer_url, audience, out) as session:
        session.start()
        algorithm = session.issuer.algorithm()
        skipped = [name for name in names if algorithm not in catalogue.get(name).algorithms]
        names = [name for name in names if name not in skipped]
        widths = (max((len(name) for name in names), default=4), 6, 15, 14, 4)
        print(
            f"replaying {len(names)} case{'s' * (len(names) != 1)} against {session.backend.method} {backend_url}",
            file=out,
        )
        print_table(out, [("case", "level", "expected", "got", "verdict")], widths)
        outcomes: list[Outcome] = []
        for name in names:
            outcome = _send_case(session, name)
            outcomes.append(outcome)
            expected = expected_status(outcome.issued.verdict, outcome.issued.statuses)
            verdict = "ok" if outcome.ok else "FAIL"
            print_table(out, [(name, outcome.issued.level, expected, outcome.got, verdict)], widths)
            out.flush()
        failed = [o for o in outcomes if not o.ok]
        for outcome in failed:
            _print_failure(outcome, session.backend, issuer_url, out)
        summary = f"{len(outcomes)} cases: {len(outcomes) - len(failed)} ok, {len(failed)} FAIL"
        if failed:
            must = sum(o.issued.level == "MUST" for o in failed)
            summary += f" ({must} MUST, {len(failed) - must} SHOULD)"
        if skipped:
            summary += f"; not for {algorithm}: {', '.join(skipped)}"
        print(summary, file=out)
        return exit_code([o.issued.level for o in failed], strict, out)


def _send_case(session: Session, name: str) -> Outcome:
    issued = session.issuer.token(name, session.audience)
    try:
        answer = session.backend.send(issued.token, what=f"the {name} token")
    finally:
        if issued.keys_changed:
            session.issuer.reset_keys()  # the token was built for that state; the next case starts clean
    return judge(issued, answer, session.valid_status)


def _print_failure(outcome: Outcome, backend: Backend, issuer_url: str, out: TextIO) -> None:
    issued = outcome.issued
    lines = [
        "",
        f"FAIL {issued.case} ({issued.level}): {outcome.why}",
        f"  case: {issued.description}",
        f"  expected: {issued.expected}",
        f"  fix: {issued.hint}",
        "  " + curl_command(backend.method, backend.url, issued.token),
    ]
    if issued.keys_changed:
        lines.append(
            "  (this token needs the key state its case prepares, which the replay undid: for a fresh one, "
            f"python -m makrx_contracts.harness.issuer token --case {issued.case} --issuer {issuer_url})"
        )
    print("\n".join(lines), file=out)
