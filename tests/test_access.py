"""The AUTH probe and the role-protected operations, found from settings, OpenAPI scopes and probing
(contracts/access.py); error bodies in a wrapper (contracts/errorshape.py)."""

from __future__ import annotations

import httpx
import pytest
from makrx_contracts.contracts.access import choose_probe, role_rules
from makrx_contracts.contracts.errorshape import parse_error_body
from makrx_contracts.contracts.openapi import OpenAPIDoc, Operation
from makrx_contracts.harness.backend.settings import RoleRule, TargetSettings, load_settings, parse_operation
from makrx_contracts.harness.errors import ConfigError

_BEARER = [{"HTTPBearer": []}]
DOC = OpenAPIDoc(
    "/openapi.json",
    {
        "paths": {
            "/api/admin/dashboard": {"get": {"security": _BEARER}},
            "/api/v1/items": {"get": {}, "post": {"security": [{"HTTPBearer": ["editor"]}], "requestBody": {}}},
            "/api/v1/items/{item_id}": {
                "delete": {"security": [{"HTTPBearer": ["admin"]}], "parameters": [{"name": "item_id", "in": "path"}]}
            },
            "/api/v1/me": {"get": {"security": _BEARER}},
            "/api/v1/reports": {"get": {"security": _BEARER}},
        }
    },
)


def test_scopes_of_a_security_requirement_are_role_rules_after_the_settings() -> None:
    settings = TargetSettings(roles=(RoleRule("/api/v1/items/{item_id}", "DELETE", ("owner",)),))
    assert role_rules(DOC, settings) == (
        RoleRule("/api/v1/items/{item_id}", "DELETE", ("owner",)),
        RoleRule("/api/v1/items", "POST", ("editor",)),
    )


def test_the_probe_is_the_first_operation_a_plain_token_may_call() -> None:
    """An admin route that sorts first answers 403 to a plain token: it is skipped, and said so."""
    answers = {"/api/admin/dashboard": 403, "/api/v1/me": 200}
    asked: list[str] = []

    def status(op: Operation) -> int:
        asked.append(op.path)
        return answers[op.path]

    choice = choose_probe(DOC, TargetSettings(), role_rules(DOC, TargetSettings()), status)
    assert choice is not None and (choice.operation.path, choice.source) == ("/api/v1/me", "discovered")
    assert asked == ["/api/admin/dashboard", "/api/v1/me"]
    assert "GET /api/admin/dashboard → 403" in choice.describe()


def test_nothing_answering_2xx_falls_back_and_says_which_setting_helps() -> None:
    choice = choose_probe(DOC, TargetSettings(), (), lambda op: 500)
    assert choice is not None and choice.source == "fallback"
    assert choice.operation.path == "/api/admin/dashboard"
    assert "auth_probe" in choice.describe() and "token_roles" in choice.describe()


def test_a_configured_probe_wins_without_a_request() -> None:
    choice = choose_probe(DOC, TargetSettings(auth_probe="GET /api/v1/reports"), (), lambda op: pytest.fail("asked"))
    assert choice is not None and (choice.operation.path, choice.source) == ("/api/v1/reports", "settings")


def test_an_operation_a_role_rule_names_is_never_the_probe() -> None:
    rules = (RoleRule("/api/admin/dashboard", "GET", ("admin",)),)
    choice = choose_probe(DOC, TargetSettings(), rules, lambda op: 200)
    assert choice is not None and choice.operation.path == "/api/v1/me"


def test_auth_probe_setting_syntax() -> None:
    assert parse_operation("/api/v1/me") == ("GET", "/api/v1/me")
    assert parse_operation("post /api/v1/items") == ("POST", "/api/v1/items")
    with pytest.raises(ConfigError, match="METHOD /path"):
        parse_operation("GET api/v1/me")


@pytest.mark.parametrize("key", ["auth_probe", "rate_limit_path"])
def test_a_malformed_operation_setting_is_a_settings_error_at_start(tmp_path, key: str) -> None:
    """Read with the settings (one ConfigError naming the file and key, a usage error before anything boots);
    a bare path means GET, a method may be given (a limiter that counts only writes is burst with one)."""
    (tmp_path / "makrx-contract.toml").write_text(f'{key} = "me"\n')
    with pytest.raises(ConfigError, match=f"makrx-contract.toml: {key} 'me' is not `METHOD /path`"):
        load_settings(tmp_path)
    (tmp_path / "makrx-contract.toml").write_text(f'{key} = "/api/v1/me"\n')
    assert getattr(load_settings(tmp_path), key) == "GET /api/v1/me"
    (tmp_path / "makrx-contract.toml").write_text(f'{key} = "post /api/v1/items"\n')
    assert getattr(load_settings(tmp_path), key) == "POST /api/v1/items"


@pytest.mark.parametrize("wrapper", ["error", "detail"])
def test_code_message_and_id_in_one_wrapper_object_are_the_error_shape(wrapper: str) -> None:
    body = {wrapper: {"code": "not_found", "message": "Not Found", "request_id": "r-1"}}
    assert parse_error_body(httpx.Response(404, json=body)).problems == ()


def test_a_plain_detail_string_is_not_the_error_shape() -> None:
    found = parse_error_body(httpx.Response(404, json={"detail": "Not Found"}))
    assert "no machine-readable code (code / error_code / problem type)" in found.problems
