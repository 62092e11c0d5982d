"""The HTTP clients of ``token`` and ``replay``: the admin API of a running standalone issuer (``serve``), and one
operation of the backend under test.

Tokens come from the issuer's admin API (``POST /admin/tokens``), so they are signed by the keys of the process
the backend fetches its JWKS from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from makrx_contracts.harness.errors import IssuerError, TargetError

from . import catalogue

__all__ = ["DEFAULT_ISSUER", "Answer", "Backend", "Issued", "IssuerClient"]

DEFAULT_ISSUER: Final = "http://127.0.0.1:8081/realms/makrx"
"""What ``serve`` prints as the issuer with its defaults."""
TIMEOUT: Final = 10.0  # per request, the contracts' HANG_SECONDS: no answer by then is a hang
_SERVE = "python -m makrx_contracts.harness.issuer serve --port 8081"


# ---------------------------------------------------------------------------------------------- the issuer


@dataclass(frozen=True)
class Issued:
    """A token from ``POST /admin/tokens``: a valid one (``case`` None) or a catalogue case's, with its verdict."""

    token: str
    issuer: str
    audience: str
    case: str | None = None
    description: str = ""
    level: str = ""
    verdict: str = catalogue.ACCEPT.name
    statuses: frozenset[int] = frozenset()
    expected: str = ""
    hint: str = ""
    keys_changed: bool = False

    @property
    def accept(self) -> bool:
        return self.verdict == catalogue.ACCEPT.name


class IssuerClient:
    """The admin API of a standalone issuer at ``url`` (its issuer URL ``.../realms/<realm>``, or its base URL)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise IssuerError(f"--issuer {url!r} is not an http(s) URL", fix=f"e.g. --issuer {DEFAULT_ISSUER}")
        prefix, _, realm = parts.path.partition("/realms/")
        self.base_url = f"{parts.scheme}://{parts.netloc}{prefix}"
        self.realm = realm or None  # None: a base URL, any realm
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise IssuerError(
                f"no makrx issuer answers at {self.base_url} ({_reason(exc)})",
                fix=f"start one: {_SERVE}, and pass the issuer URL it prints as --issuer",
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or (response.status_code == 404 and "endpoints" in document):
            # Another server, or an older issuer without this endpoint.
            raise IssuerError(
                f"{self.base_url} is not a makrx issuer with {method} {path} (it answered {response.status_code})",
                fix=f"start one: {_SERVE}",
            )
        if response.is_error:
            raise IssuerError(
                str(document.get("error", f"{method} {path}: {response.status_code}")), fix=document.get("fix")
            )
        return document

    def token(self, case: str | None = None, audience: str | None = None) -> Issued:
        """A valid token (no case), or the case's token, its key state prepared on the issuer."""
        found = self._call("POST", "/admin/tokens", {"case": case, "audience": audience})
        realm = str(found["issuer"]).rpartition("/realms/")[2]
        if self.realm is not None and realm != self.realm:
            raise IssuerError(
                f"the issuer at {self.base_url} serves realm {realm!r}, not {self.realm!r}",
                fix=f"pass --issuer {found['issuer']}, or start serve with --realm {self.realm}",
            )
        return Issued(
            token=found["token"],
            issuer=found["issuer"],
            audience=found["audience"],
            case=found.get("case"),
            description=found.get("description", ""),
            level=found.get("level", ""),
            verdict=found.get("verdict", catalogue.ACCEPT.name),
            statuses=frozenset(found.get("statuses", ())),
            expected=found.get("expected", ""),
            hint=found.get("hint", ""),
            keys_changed=bool(found.get("keys_changed")),
        )

    def keys(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/admin/keys")["keys"])

    def algorithm(self) -> str:
        """The signing algorithm (RS256 or ES256): some cases apply to one only."""
        return str(next(k["alg"] for k in self.keys() if k["use"] == "sig" and k["state"] == "active"))

    def publish_next(self) -> None:
        self._call("POST", "/admin/keys/next")

    def promote(self) -> None:
        self._call("POST", "/admin/keys/promote")

    def retire(self) -> None:
        self._call("POST", "/admin/keys/retire")

    def reset_keys(self) -> None:
        self._call("POST", "/admin/keys/reset")

    def jwks_age(self) -> float | None:
        """Seconds since anyone last fetched the JWKS (None: nobody has); by the issuer's clock alone."""
        found = self._call("GET", "/admin/fetches?kind=jwks")
        fetches = found["clients"]
        return float(found["now"]) - float(fetches[-1]["at"]) if fetches else None


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer within the timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused" if "refused" in str(exc).lower() else f"cannot connect: {exc}"
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------- the backend


@dataclass(frozen=True)
class Answer:
    status: int | None
    error: str = ""  # why there is no status


class Backend:
    """One operation of the backend: requests with a given Authorization, every one with a timeout."""

    def __init__(self, url: str, method: str, *, timeout: float = TIMEOUT) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise TargetError(f"{url!r} is not an http(s) URL", fix="e.g. http://127.0.0.1:8000/api/v1/me")
        self.url = url
        self.method = method.upper()
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def send(self, token: str | None, *, what: str) -> Answer:
        """The answer; no answer within the timeout is an answer too (a hang), a refused connection is not."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        try:
            return Answer(self._http.request(self.method, self.url, headers=headers).status_code)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TargetError(
                f"no backend answers at {self.url} ({_reason(exc)}), sending {what}",
                fix="start it (pointed at the issuer: see `replay --help`) or check the URL; if it ran, see its log",
            ) from None
        except httpx.TimeoutException:
            return Answer(None, f"no answer within {self.timeout:.0f} s")
        except httpx.TransportError as exc:
            return Answer(None, _reason(exc))
