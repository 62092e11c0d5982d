"""Backends not shaped like ours (tests/foreign/): each boots with settings only and has its AUTH area judged."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from makrx_contracts.contracts.access import choose_probe, find_protection, role_rules
from makrx_contracts.contracts.openapi import OpenAPIDoc, Operation
from makrx_contracts.harness.backend.settings import RoleRule, TargetSettings, load_settings
from makrx_contracts.harness.errors import ConfigError

from tests.foreign import foreign_backend
from tests.suite_runner import run_suite
from tests.variants import Variant, load_variants


def test_kc_env_names_are_one_line_of_settings_each(tmp_path: Path) -> None:
    """Its [env] names the run's issuer, database and Redis as placeholders: every AUTH contract runs and
    passes, none skipped; without those lines it trusts a Keycloak that is not there."""
    app = foreign_backend("kc-env-names").build(tmp_path / "with")
    result = run_suite(app, tmp_path / "with", "-m", "auth")
    assert result.failed == set() and result.ids_with("skipped") == set(), result.output
    assert {"AUTH-VALID-TOKEN", "AUTH-BAD-TOKEN", "AUTH-KEY-ROTATION", "AUTH-ROLE-FORBIDDEN"} <= result.ids_with(
        "passed"
    ), result.output

    bare = foreign_backend("kc-env-names").build(tmp_path / "without")
    (bare / "makrx-contract.toml").unlink()
    result = run_suite(bare, tmp_path / "without", "-k", "test_a_valid_token_is_accepted")
    assert result.failed == {"AUTH-VALID-TOKEN"}, result.output


@pytest.mark.parametrize(
    ("line", "message", "fix"),
    [
        ('KC_URL = "{issuer}"', "[env] KC_URL names unknown placeholder(s) {issuer}", "use only: {issuer_url}"),
        ('JSON = "{\\"a\\": 1}"', '[env] JSON names unknown placeholder(s) {"a"}', "{{ }} for literal braces"),
        ('X = "a}b"', "[env] X 'a}b' is not a valid template", "write {{ and }} for literal braces"),
    ],
)
def test_a_wrong_placeholder_is_one_clear_message(tmp_path: Path, line: str, message: str, fix: str) -> None:
    (tmp_path / "makrx-contract.toml").write_text(f"[env]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert message in caught.value.message and fix in caught.value.fix


def test_literal_braces_are_doubled(tmp_path: Path) -> None:
    (tmp_path / "makrx-contract.toml").write_text(
        'command = "{python} -m app --port {port}"\n[env]\nJSON = "{{\\"a\\": 1}}"\n'
    )
    settings = load_settings(tmp_path)
    assert settings.env["JSON"].format() == '{"a": 1}'


def test_a_mounted_sub_applications_operations_are_judged(tmp_path: Path) -> None:
    """Operations of a sub-application (`app.mount("/api/v2", reports)`) are judged like the main app's: the
    conformant backend passes AUTH, PREFIX and FUZZ unskipped; once its mounted operation crashes, FUZZ says so."""
    app = foreign_backend("mounted-sub-app").build(tmp_path / "ok")
    result = run_suite(app, tmp_path / "ok", "-m", "auth or prefix or fuzz")
    assert result.failed == set() and result.ids_with("skipped") == set(), result.output

    broken = foreign_backend("mounted-sub-app").build(tmp_path / "broken")
    reports = broken / "routes" / "reports.py"
    reports.write_text(
        reports.read_text().replace(
            "return Summary(owner=user.sub, items=0)", 'raise RuntimeError("the report store is down")'
        )
    )
    result = run_suite(broken, tmp_path / "broken", "-m", "fuzz")
    assert "FUZZ-NO-5XX" in result.failed and "/api/v2/reports/summary" in result.output, result.output


def test_a_body_read_by_hand_is_still_sent_malformed_json(tmp_path: Path) -> None:
    """No operation declares a request body: ERR-MALFORMED-JSON finds the write that reads one by probing, passes
    when it answers a shaped 400, and fails once the hand-written parse lets the error through as a 500."""
    app = foreign_backend("hand-read-body").build(tmp_path / "ok")
    result = run_suite(app, tmp_path / "ok", "-k", "test_malformed_json_is_a_client_error")
    assert result.outcomes == {"ERR-MALFORMED-JSON": {"passed"}}, result.output

    broken = foreign_backend("hand-read-body").build(tmp_path / "broken")
    items = broken / "routes" / "items.py"
    items.write_text(items.read_text().replace("except ValueError:", "except KeyError:"))
    result = run_suite(broken, tmp_path / "broken", "-k", "test_malformed_json_is_a_client_error")
    assert result.failed == {"ERR-MALFORMED-JSON"} and "500" in result.output, result.output


def test_request_ids_in_logs_are_judged_when_the_header_is_missing(tmp_path: Path) -> None:
    """A backend that never returns X-Request-ID fails RID-EVERY-RESPONSE, and its logs are judged all the same
    (by the id the request sent): JSON lines pass, plain-text lines fail RID-IN-LOGS."""
    backend = foreign_backend("request-id-not-returned")
    result = run_suite(backend.build(tmp_path / "json"), tmp_path / "json", "-m", "request_id")
    assert "RID-EVERY-RESPONSE" in result.failed and result.outcomes["RID-IN-LOGS"] == {"passed"}, result.output

    plain = tomllib.loads((Path(__file__).parent / "variants" / "plain-text-logs.toml").read_text())
    both = Variant("plain", "", "", {"patch": backend.data["patch"] + plain["patch"]})
    result = run_suite(both.build(tmp_path / "plain"), tmp_path / "plain", "-m", "request_id")
    assert "RID-IN-LOGS" in result.failed, result.output


def test_hand_read_bearer_is_found_protected_by_asking(tmp_path: Path) -> None:
    """Its dependency reads the Authorization header by hand, so the OpenAPI document declares no security:
    the protected operations are found by asking (401 without a token, 2xx with one), the role-protected one
    from [[roles]], and the AUTH area is judged in full and passes."""
    app = foreign_backend("hand-read-bearer").build(tmp_path)
    result = run_suite(app, tmp_path, "-m", "auth")
    assert result.failed == set() and result.ids_with("skipped") == set(), result.output
    assert {"AUTH-VALID-TOKEN", "AUTH-NO-TOKEN", "AUTH-BAD-TOKEN", "AUTH-ROLE-FORBIDDEN"} <= result.ids_with(
        "passed"
    ), result.output
    assert "found protected by asking, undeclared in the OpenAPI document: GET /api/v1/me" in result.output


_UNDECLARED = OpenAPIDoc(
    "/openapi.json",
    {
        "paths": {
            "/api/admin/stats": {"get": {}},
            "/api/health": {"get": {}},
            "/api/v1/items": {"get": {}},
            "/api/v1/items/{item_id}": {"get": {"parameters": [{"name": "item_id", "in": "path"}]}},
            "/api/v1/me": {"get": {}},
            "/api/v1/session": {"get": {}},
        }
    },
)


def test_asking_finds_the_protected_operations_and_never_probes_a_role_rule() -> None:
    """Only undeclared GETs without parameters under /api are asked: public ones (200 without a token) and ones
    a plain token cannot open either (401 again) are not protected; a [[roles]] operation is protected without
    asking, and the plain-token probe never picks it, even where a plain token would get 2xx."""
    anonymous = {"/api/v1/items": 200, "/api/v1/me": 401, "/api/v1/session": 401}
    with_token = {"/api/v1/me": 200, "/api/v1/session": 401}
    asked: list[str] = []

    def ask(answers: dict[str, int]) -> Callable[[Operation], int]:
        def status(op: Operation) -> int:
            asked.append(f"{op.method} {op.path}")
            return answers.get(op.path, 200)  # a lenient admin route would let a plain token in

        return status

    settings = TargetSettings(roles=(RoleRule("/api/admin/stats", "GET", ("admin",)),))
    rules = role_rules(_UNDECLARED, settings)
    protection = find_protection(_UNDECLARED, settings, rules, ask(anonymous), ask(with_token))
    assert protection.found == ("GET /api/v1/me",)
    assert [op.path for op in protection.operations(_UNDECLARED) if op.secured] == ["/api/admin/stats", "/api/v1/me"]
    choice = choose_probe(_UNDECLARED, settings, rules, ask(with_token), protection.found)
    assert choice is not None and (choice.operation.path, choice.source) == ("/api/v1/me", "discovered")
    assert choice.operation.secured and "found protected by asking" in choice.describe()
    assert set(asked) == {"GET /api/v1/items", "GET /api/v1/me", "GET /api/v1/session"}


def test_without_a_trusted_token_a_401_is_enough() -> None:
    """A backend started by someone else does not trust the harness's tokens: a 401 without one marks it."""
    protection = find_protection(
        _UNDECLARED, TargetSettings(), (), lambda op: 401 if op.path == "/api/v1/me" else 403, None
    )
    assert protection.found == ("GET /api/v1/me",)


def test_an_invalid_tokens_401_is_judged_when_the_401_without_a_token_is_wrong_too(tmp_path: Path) -> None:
    """HTTPBearer's 403 without a token (AUTH-NO-TOKEN's failure) no longer hides a second defect: the 401 for
    an expired token without a Bearer challenge fails AUTH-INVALID-TOKEN-RESPONSE as well."""
    variants = {v.name: v for v in load_variants()}
    patches = variants["auth-httpbearer-403"].data["patch"] + variants["auth-invalid-token-no-challenge"].data["patch"]
    both = Variant("two-defects", "", "", {"patch": patches})
    result = run_suite(both.build(tmp_path), tmp_path, "-k", "no_bearer_token_is_401 or shaped_401_challenge")
    assert {"AUTH-NO-TOKEN", "AUTH-INVALID-TOKEN-RESPONSE"} <= result.failed, result.output
