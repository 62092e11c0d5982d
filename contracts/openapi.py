"""The target's OpenAPI document, and the operations contracts pick from it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

__all__ = ["OPENAPI_PATHS", "OpenAPIDoc", "Operation", "fetch_openapi"]

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
        return _PARAM.sub(lambda m: fill if fill is not None else _sample(self.path_params.get(m.group(1))), self.path)


def _sample(kind: str | None) -> str:
    return "1" if kind in ("integer", "number") else "makrx-probe"


@dataclass(frozen=True)
class OpenAPIDoc:
    """The parsed document plus where it was found; ``mounted``: the sub-applications' documents merged in."""

    url: str
    data: dict[str, Any]
    mounted: tuple[str, ...] = ()

    @property
    def server_prefix(self) -> str:
        """A relative first `servers` URL (e.g. `/api`) that the document's paths hang under."""
        servers = self.data.get("servers") or []
        url = servers[0].get("url", "") if servers and isinstance(servers[0], dict) else ""
        return url.rstrip("/") if url.startswith("/") else ""

    def with_mounted(self, prefix: str, url: str, sub: dict[str, Any]) -> OpenAPIDoc:
        """This document plus a sub-application's mounted at ``prefix`` (served at ``url``): its paths under
        the prefix, its components beside ours (renamed where a name means something else here), its
        document-wide security on each of its operations."""
        data = copy.deepcopy(self.data)
        components = data.setdefault("components", {})
        tag = re.sub(r"\W+", "_", prefix).strip("_") + "__"
        theirs = sub.get("components") or {}
        renamed = {
            (section, name)
            for section, entries in theirs.items()
            for name, entry in entries.items()
            if components.get(section, {}).get(name, entry) != entry
        }
        sub = _renamed_refs(
            copy.deepcopy(sub),
            {f"#/components/{section}/{name}": f"#/components/{section}/{tag}{name}" for section, name in renamed},
        )
        for section, entries in (sub.get("components") or {}).items():
            components.setdefault(section, {}).update(
                {(tag + name if (section, name) in renamed else name): entry for name, entry in entries.items()}
            )
        own = self.server_prefix
        for path, item in (sub.get("paths") or {}).items():
            full = prefix + path
            if own and full.startswith(own + "/"):
                full = full[len(own) :]
            for method in _HTTP_METHODS:
                if isinstance(item.get(method), dict):  # its own document-wide security, never ours
                    item[method].setdefault("security", sub.get("security", []))
            data.setdefault("paths", {})[full] = item
        return replace(self, data=data, mounted=(*self.mounted, url))

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
                params = {
                    p.get("name"): (p.get("schema") or {}).get("type", "string")
                    for p in [*shared, *op.get("parameters", [])]
                    if p.get("in") == "path"
                }
                scopes = tuple(
                    dict.fromkeys(
                        scope
                        for requirement in security
                        if isinstance(requirement, dict)
                        for names in requirement.values()
                        for scope in names or ()
                    )
                )
                ops.append(Operation(path, method.upper(), secured, "requestBody" in op, params, scopes))
        return ops

    def methods_of(self, path: str) -> set[str]:
        return {op.method for op in self.operations if op.path == path}


def _renamed_refs(node: Any, renames: dict[str, str]) -> Any:
    if not renames:
        return node
    return json.loads(
        json.dumps(node),
        object_hook=lambda o: {**o, "$ref": renames.get(o["$ref"], o["$ref"])} if isinstance(o.get("$ref"), str) else o,
    )


def _document(client: httpx.Client, path: str) -> dict[str, Any] | None:
    try:
        response = client.get(path)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) and "paths" in data else None


def fetch_openapi(client: httpx.Client, mounts: Sequence[str] = ()) -> OpenAPIDoc | None:
    """The first OpenAPI document found at the usual paths, or None; with the documents of sub-applications
    mounted at ``mounts`` (`app.mount` prefixes) merged in: their operations are the API's too."""
    doc = next(
        (OpenAPIDoc(url=path, data=data) for path in OPENAPI_PATHS if (data := _document(client, path)) is not None),
        None,
    )
    if doc is None:
        return None
    for prefix in mounts:
        url = f"{prefix}/openapi.json"
        if url != doc.url and (sub := _document(client, url)) is not None:
            doc = doc.with_mounted(prefix, url, sub)
    return doc
