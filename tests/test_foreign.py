"""Backends not shaped like ours (tests/foreign/): each boots with settings only and has its AUTH area judged."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from makrx_contracts.harness.errors import ConfigError
from makrx_contracts.harness.target.settings import load_settings
from tests.suite_runner import run_suite
from tests.variants import Variant

FOREIGN_DIR = Path(__file__).resolve().parent / "foreign"


def _backend(name: str) -> Variant:
    data = tomllib.loads((FOREIGN_DIR / f"{name}.toml").read_text())
    return Variant(name, "", data.get("description", ""), data)


def test_kc_env_names_are_one_line_of_settings_each(tmp_path: Path) -> None:
    """Its [env] names the run's issuer, database and Redis as placeholders: every AUTH contract runs and
    passes, none skipped; without those lines it trusts a Keycloak that is not there."""
    app = _backend("kc-env-names").build(tmp_path / "with")
    result = run_suite(app, tmp_path / "with", "-m", "auth")
    assert result.failed == set() and result.ids_with("skipped") == set(), result.output
    assert {"AUTH-VALID-TOKEN", "AUTH-BAD-TOKEN", "AUTH-KEY-ROTATION", "AUTH-ROLE-FORBIDDEN"} <= \
        result.ids_with("passed"), result.output

    bare = _backend("kc-env-names").build(tmp_path / "without")
    (bare / "makrx-contract.toml").unlink()
    result = run_suite(bare, tmp_path / "without", "-k", "test_a_valid_token_is_accepted")
    assert result.failed == {"AUTH-VALID-TOKEN"}, result.output


@pytest.mark.parametrize(("line", "message", "fix"), [
    ('KC_URL = "{issuer}"', "[env] KC_URL names unknown placeholder(s) {issuer}", "use only: {issuer_url}"),
    ('JSON = "{\\"a\\": 1}"', '[env] JSON names unknown placeholder(s) {"a"}', "{{ }} for literal braces"),
    ('X = "a}b"', "[env] X 'a}b' is not a valid template", "write {{ and }} for literal braces"),
])
def test_a_wrong_placeholder_is_one_clear_message(tmp_path: Path, line: str, message: str, fix: str) -> None:
    (tmp_path / "makrx-contract.toml").write_text(f"[env]\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert message in caught.value.message and fix in caught.value.fix


def test_literal_braces_are_doubled(tmp_path: Path) -> None:
    (tmp_path / "makrx-contract.toml").write_text('command = "{python} -m app --port {port}"\n'
                                                 '[env]\nJSON = "{{\\"a\\": 1}}"\n')
    settings = load_settings(tmp_path)
    assert settings.env["JSON"].format() == '{"a": 1}'


def test_a_mounted_sub_applications_operations_are_judged(tmp_path: Path) -> None:
    """Operations of a sub-application (`app.mount("/api/v2", reports)`) are judged like the main app's: the
    conformant backend passes AUTH, PREFIX and FUZZ unskipped; once its mounted operation crashes, FUZZ says so."""
    app = _backend("mounted-sub-app").build(tmp_path / "ok")
    result = run_suite(app, tmp_path / "ok", "-m", "auth or prefix or fuzz")
    assert result.failed == set() and result.ids_with("skipped") == set(), result.output

    broken = _backend("mounted-sub-app").build(tmp_path / "broken")
    reports = broken / "routes" / "reports.py"
    reports.write_text(reports.read_text().replace("return Summary(owner=user.sub, items=0)",
                                                   'raise RuntimeError("the report store is down")'))
    result = run_suite(broken, tmp_path / "broken", "-m", "fuzz")
    assert "FUZZ-NO-5XX" in result.failed and "/api/v2/reports/summary" in result.output, result.output
