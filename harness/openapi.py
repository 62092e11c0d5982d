"""The target's OpenAPI document, and the operations contracts pick from it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Operation", "OpenAPIDoc", "fetch_openapi", "OPENAPI_PATHS"]

OPENAPI_PATHS = ("/openapi.json", "/api/openapi.json", "/api/v1/openapi.json")
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Operation:
    """One path + method of the document."""

    path: str
    method: str
    secured: bool
    has_body: bool
    path_params: dict[str, str]  # name -> JSON schema type
    scopes: tuple[str, ...] = ()  # named by its security requirements: FastAPI's `Security(..., scopes=[...])`

    def url(self, fill: str | None = None) -> str:
        """The path with every parameter filled: ``fill`` if given, else a value of the declared type."""
        return _PARAM.sub(lambda m: fill if fill is not None else _sample(self.path_params.get(m.group(1))),
                          self.path)


def _sample(kind: str | None) -> str:
    return "1" if kind in ("integer", "number") else "makrx-probe"


@dataclass(frozen=True)
class OpenAPIDoc:
    """The parsed document plus where it was found."""

    url: str
    data: dict[str, Any]

    @property
    def operations(self) -> list[Operation]:
        ops = []
        for path, item in (self.data.get("paths") or {}).items():
            shared = item.get("parameters", [])
            for method in _HTTP_METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                security = (op["security"] if "security" in op else self.data.get("security")) or []
                secured = bool(security)
                params = {p.get("name"): (p.get("schema") or {}).get("type", "string")
                          for p in [*shared, *op.get("parameters", [])] if p.get("in") == "path"}
                scopes = tuple(dict.fromkeys(scope for requirement in security if isinstance(requirement, dict)
                                             for names in requirement.values() for scope in names or ()))
                ops.append(Operation(path, method.upper(), secured, "requestBody" in op, params, scopes))
        return ops

    def methods_of(self, path: str) -> set[str]:
        return {op.method for op in self.operations if op.path == path}


def fetch_openapi(client: httpx.Client) -> OpenAPIDoc | None:
    """The first OpenAPI document found at the usual paths, or None."""
    for path in OPENAPI_PATHS:
        try:
            response = client.get(path)
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            try:
                data = response.json()
            except ValueError:
                continue
            if isinstance(data, dict) and "paths" in data:
                return OpenAPIDoc(url=path, data=data)
    return None
