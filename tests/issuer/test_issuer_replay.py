"""`token` and `replay` of the standalone issuer: a real `serve` process, real uvicorn backends (the reference app and
a broken variant) pointed at it, real HTTP. The backends need neither Postgres nor Redis for GET /api/v1/me."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import pytest
from makrx_contracts.harness.issuer import catalogue
from makrx_contracts.harness.issuer.__main__ import main
from makrx_contracts.harness.issuer.backend_env import JWKS_TTL_SECONDS
from makrx_contracts.harness.issuer.remote import Answer, Issued
from makrx_contracts.harness.issuer.replay import curl_command, judge
from makrx_contracts.harness.ports import free_port, port_is_bound
from makrx_contracts.harness.process import ManagedProcess
from makrx_contracts.harness.waiting import wait_for

from tests.variants import load_variants

from .test_issuer_standalone import ROOT, _env

AUDIENCE = "makrx-reference-api"  # the reference app's KEYCLOAK_CLIENT_ID default, given to serve --audience
ME = "/api/v1/me"  # protected, and needs no database
# What tests/variants/auth-accepts-alg-none.toml lets in: alg none in any spelling, three segments (pyjwt refuses
# the two-segment no_dot tokens before the variant's shortcut sees them).
ALG_NONE_CASES = {
    *(f"alg_{spelling}_trailing_dot" for spelling in ("none", "None", "NONE", "nOnE")),
    "alg_none_with_signature",
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone issuer process; yields its issuer URL."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "makrx_contracts.harness.issuer",
        "serve",
        "--port",
        str(port),
        "--quiet",
        "--audience",
        AUDIENCE,
    ]
    process = ManagedProcess(argv, log_path=tmp_path_factory.mktemp("serve") / "serve.log", env=_env(), name="serve")
    try:
        wait_for(
            lambda: port_is_bound(port),
            what="the standalone issuer's port",
            timeout=20,
            abort=lambda: None if process.exit_code() is None else f"it exited: {process.log_tail()}",
        )
        yield f"http://127.0.0.1:{port}/realms/makrx"
    finally:
        process.stop(timeout=5)


@contextmanager
def _backend(cwd: Path, issuer_url: str, log: Path) -> Iterator[str]:
    """The reference app (or a variant of it) in ``cwd`` under uvicorn, trusting ``issuer_url``; yields its base URL."""
    port = free_port()
    base, _, realm = issuer_url.rpartition("/realms/")
    scrubbed = (
        "KEYCLOAK_",
        "DATABASE_URL",
        "REDIS_URL",
        "RATE_LIMIT",
        "CORS_ORIGINS",
        "TRUST_PROXY",
        "ENVIRONMENT",
        "PORT",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(scrubbed)}
    env.update(
        {
            "PYTHONPATH": str(cwd),
            "KEYCLOAK_URL": base,
            "KEYCLOAK_REALM": realm,
            "KEYCLOAK_CLIENT_ID": AUDIENCE,
            "KEYCLOAK_PK_TTL_SECONDS": str(JWKS_TTL_SECONDS),
            "ENVIRONMENT": "test",
            "RATE_LIMIT_PER_MINUTE": "100000",  # these tests replay the catalogue more than once a minute
        }
    )
    argv = [sys.executable, "-m", "uvicorn", "reference_app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = ManagedProcess(argv, log_path=log, env=env, cwd=cwd, name="backend")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=1) as client:
            wait_for(
                lambda: client.get(url + "/health").status_code == 200,
                what=f"the backend at {url}",
                timeout=30,
                transient=(httpx.TransportError,),
                abort=lambda: None if process.exit_code() is None else f"it exited: {process.log_tail()}",
            )
        yield url
    finally:
        process.stop(timeout=5)


@pytest.fixture(scope="module")
def reference(serve: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _backend(ROOT, serve, tmp_path_factory.mktemp("reference") / "backend.log") as url:
        yield url


@contextmanager
def _variant(name: str, issuer_url: str, root: Path) -> Iterator[str]:
    app = next(v for v in load_variants() if v.name == name).build(root)
    with _backend(app.parent, issuer_url, root / "backend.log") as url:
        yield url


@pytest.fixture(scope="module")
def accepts_alg_none(serve: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _variant("auth-accepts-alg-none", serve, tmp_path_factory.mktemp("variant")) as url:
        yield url


@pytest.fixture
def no_refetch_on_unknown_kid(serve: str, tmp_path: Path) -> Iterator[str]:
    with _variant("auth-no-refetch-on-unknown-kid", serve, tmp_path) as url:
        yield url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _signing_keys(issuer_url: str) -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict(httpx.get(f"{issuer_url}/protocol/openid-connect/certs", timeout=5).json())


def _rows(out: str) -> dict[str, list[str]]:
    """Table rows by their first cell (cells are separated by two or more blanks)."""
    return {cells[0]: cells for line in out.splitlines() if len(cells := re.split(r"\s{2,}", line.strip())) >= 4}


# ---------------------------------------------------------------------------------------------- pure formatting


def test_the_curl_line_is_quoted_for_a_shell() -> None:
    line = curl_command("DELETE", "http://127.0.0.1:8000/api/v1/items?x=1&y=2", "a'b.c+d/e!")
    assert line == (
        "curl -sS -i -X DELETE -H 'Authorization: Bearer a'\"'\"'b.c+d/e!' 'http://127.0.0.1:8000/api/v1/items?x=1&y=2'"
    )


def test_a_bad_token_answered_like_the_valid_one_was_accepted() -> None:
    bad = Issued(
        "t", "http://i/realms/makrx", "api", case="expired", level="MUST", verdict="reject", statuses=frozenset({401})
    )
    control = Issued("t", "http://i/realms/makrx", "api", case="aud_array_with_ours", level="MUST")
    assert judge(bad, Answer(401), valid_status=200).ok
    assert judge(bad, Answer(404), valid_status=404).got == "404 accepted"  # a 404 after auth is what valid gets
    assert judge(bad, Answer(500), valid_status=200).got == "500 crashed"
    assert not judge(bad, Answer(None, "no answer within 10 s"), valid_status=200).ok
    assert judge(control, Answer(404), valid_status=404).ok and not judge(control, Answer(401), valid_status=200).ok


# ---------------------------------------------------------------------------------------------- token


def test_token_prints_a_case_token_signed_by_the_running_issuer(serve: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "makrx_contracts.harness.issuer", "token", "--case", "expired", "--issuer", serve],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    key = _signing_keys(serve)[jwt.get_unverified_header(token)["kid"]]
    with pytest.raises(jwt.ExpiredSignatureError):  # the signature is good: only exp is wrong
        jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=serve)
    assert "expired (MUST, aud makrx-reference-api)" in done.stderr and "expected: 401" in done.stderr


def test_token_without_a_case_is_valid_and_a_prepared_case_says_how_to_restore(
    serve: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = serve.rpartition("/realms/")[0]
    code, out, _ = _run(capsys, "token", "--issuer", base, "--audience", "other-api")  # the base URL works too
    claims = jwt.decode(
        out.strip(),
        _signing_keys(serve)[jwt.get_unverified_header(out.strip())["kid"]].key,
        algorithms=["RS256"],
        audience="other-api",
        issuer=serve,
    )
    assert code == 0 and claims["typ"] == "Bearer"
    try:
        code, out, err = _run(capsys, "token", "--case", "kid_other_key", "--issuer", serve)
        assert code == 0 and f"curl -X POST {base}/admin/keys/reset" in err
        kid = jwt.get_unverified_header(out.strip())["kid"]
        assert kid in {key.key_id for key in _signing_keys(serve).keys}  # the other key is published
    finally:
        httpx.post(f"{base}/admin/keys/reset", timeout=5)


def test_token_list_shows_every_case_with_level_and_expected_answer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "token", "--list")  # offline: no --issuer
    rows = _rows(out)
    assert code == 0 and len(rows) == len(catalogue.CATALOGUE) + 1
    assert rows["expired"][1:3] == ["MUST", "401"] and rows["exp_string"][1] == "SHOULD"
    assert rows["aud_array_with_ours"][2] == "2xx" and rows["oversized_16kb"][2] == "400/401/413/431"


def test_token_names_close_matches_and_how_to_start_the_issuer(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "token", "--case", "alg_nun")
    assert code == 2 and "no bad-token case 'alg_nun'" in err and "alg_none_no_dot" in err
    code, _, err = _run(capsys, "token", "--case", "expired", "--issuer", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "no makrx issuer answers" in err and "serve --port 8081" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------- replay


def test_replay_passes_the_reference_app_and_restores_the_keys(
    serve: str, reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "replay", reference + ME, "--issuer", serve)
    rows = _rows(out)
    applicable = len(catalogue.CATALOGUE)
    assert code == 0, out + err
    assert f"{applicable} cases: {applicable} ok, 0 FAIL" in out
    assert all(rows[case.name][-1] == "ok" for case in catalogue.CATALOGUE)
    keys = httpx.get(f"{serve.rpartition('/realms/')[0]}/admin/keys", timeout=5).json()["keys"]
    assert [k["state"] for k in keys if k["use"] == "sig"] == ["active"]  # kid_other_key's next key is gone


def test_replay_reports_exactly_the_broken_cases_of_a_variant(
    serve: str, accepts_alg_none: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "replay", accepts_alg_none + ME, "--issuer", serve)
    failed = {name for name, cells in _rows(out).items() if cells[-1] == "FAIL"}
    assert code == 1 and failed == ALG_NONE_CASES, out
    assert f"{len(ALG_NONE_CASES)} FAIL ({len(ALG_NONE_CASES)} MUST, 0 SHOULD)" in out
    curls = [line.strip() for line in out.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == len(ALG_NONE_CASES) and all("-X GET -H 'Authorization: Bearer " in c for c in curls)
    if shutil.which("curl"):  # ready to paste: the shell gets the same token through, and the backend takes it
        pasted = subprocess.run(curls[0], shell=True, capture_output=True, text=True, timeout=15)
        assert pasted.stdout.startswith("HTTP/1.1 200"), pasted.stdout + pasted.stderr


def test_replay_of_chosen_cases(serve: str, accepts_alg_none: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "replay",
        accepts_alg_none + ME,
        "--issuer",
        serve,
        "--case",
        "expired",
        "--case",
        "exp_string",
        "kid_other_key",
    )
    assert code == 0 and set(_rows(out)) == {"case", "expired", "exp_string", "kid_other_key"}
    assert "3 cases: 3 ok, 0 FAIL" in out


def test_replay_stops_with_one_line_when_nothing_can_be_judged(
    serve: str, reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = _run(capsys, "replay", f"http://127.0.0.1:{free_port()}{ME}", "--issuer", serve)
    assert code == 2 and "no backend answers at" in err and "connection refused" in err
    code, _out, err = _run(capsys, "replay", reference + ME, "--issuer", serve, "--audience", "other-api")
    assert code == 2 and "does not trust this issuer" in err and "KEYCLOAK_CLIENT_ID=other-api" in err
    code, _out, err = _run(capsys, "replay", reference + "/health", "--issuer", serve)
    assert code == 2 and "does not ask for a token" in err
    code, _out, err = _run(capsys, "replay", reference + ME, "--issuer", serve, "--case", "expird")
    assert code == 2 and "did you mean expired" in err
    assert "Traceback" not in err


def test_rotation_against_the_reference_app(serve: str, reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "replay", reference + ME, "--issuer", serve, "--rotate")
    steps = [line for line in out.splitlines() if line.startswith(("publish", "promote", "retire"))]
    assert code == 0, out + err
    assert [re.split(r"\s{2,}", s)[0] for s in steps] == ["publish", "promote", "promote", "promote again", "retire"]
    assert all(s.endswith("ok") for s in steps), out
    assert "a valid token is accepted again" in out and "5 steps: 5 ok, 0 FAIL" in out


def test_rotation_catches_a_backend_that_waits_for_its_cache_to_expire(
    serve: str, no_refetch_on_unknown_kid: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "replay", no_refetch_on_unknown_kid + ME, "--issuer", serve, "--rotate", "--strict")
    failed = [line for line in out.splitlines() if line.endswith("  FAIL")]  # table rows, not the summary
    # The first promotion passes once the cache expires; the one right after a JWKS load shows no refetch.
    assert code == 1 and [re.split(r"\s{2,}", line)[0] for line in failed] == ["promote again"], out
    assert "FAIL promote again (SHOULD, AUTH-KEY-ROTATION)" in out and "refetch the JWKS" in out
