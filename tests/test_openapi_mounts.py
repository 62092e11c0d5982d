"""Sub-applications mounted with `app.mount`: found in the backend's source, their documents merged into one."""

from __future__ import annotations

from pathlib import Path

from makrx_contracts.contracts.openapi import OpenAPIDoc
from makrx_contracts.harness.backend.source import mount_prefixes


def _doc(paths: dict, schemas: dict, **extra: object) -> dict:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas}, **extra}


def test_mount_prefixes_are_the_literal_paths_of_mount_calls(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        'app.mount("/api/v2/", reports)\napp.mount(path="/static", app=files)\n'
        'app.mount(PREFIX, other)\napp.mount("relative", x)\n'
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text('app.mount("/test-only", x)\n')
    assert mount_prefixes(tmp_path) == ("/api/v2", "/static")
    assert mount_prefixes(None) == ()


def test_a_mounted_document_joins_under_its_prefix_with_its_own_names_and_security() -> None:
    main = OpenAPIDoc(
        "/openapi.json",
        _doc(
            {"/api/v1/items": {"get": {"responses": {"200": {"$ref": "#/components/schemas/Item"}}}}},
            {"Item": {"type": "object"}, "Error": {"type": "object"}},
            security=[{"HTTPBearer": []}],
        ),
    )
    sub = _doc(
        {
            "/reports": {
                "get": {
                    "responses": {"200": {"$ref": "#/components/schemas/Item"}},
                    "default": {"$ref": "#/components/schemas/Error"},
                }
            }
        },
        {"Item": {"type": "string"}, "Error": {"type": "object"}},
    )
    merged = main.with_mounted("/api/v2", "/api/v2/openapi.json", sub)
    ops = {(op.method, op.path): op for op in merged.operations}
    assert ops[("GET", "/api/v1/items")].secured and not ops[("GET", "/api/v2/reports")].secured
    report = merged.data["paths"]["/api/v2/reports"]["get"]
    # Same name, other meaning: renamed; same name, same schema: shared.
    assert report["responses"]["200"] == {"$ref": "#/components/schemas/api_v2__Item"}
    assert report["default"] == {"$ref": "#/components/schemas/Error"}
    assert merged.data["components"]["schemas"]["api_v2__Item"] == {"type": "string"}
    assert merged.data["components"]["schemas"]["Item"] == {"type": "object"}
    assert merged.mounted == ("/api/v2/openapi.json",) and main.mounted == ()


def test_a_mounted_path_is_relative_to_the_main_documents_server_prefix() -> None:
    main = OpenAPIDoc("/api/openapi.json", _doc({"/v1/items": {"get": {}}}, {}, servers=[{"url": "/api"}]))
    merged = main.with_mounted("/api/v2", "/api/v2/openapi.json", _doc({"/reports": {"get": {}}}, {}))
    assert set(merged.data["paths"]) == {"/v1/items", "/v2/reports"}
