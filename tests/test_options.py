"""Every --makrx-* option is in `pytest --help`, works on the command line and as an ini key."""

from __future__ import annotations

import pytest
from makrx_contracts.harness.config import OPTIONS, resolve_config

SAMPLES = {
    "target": ("http://127.0.0.1:9", ("http://127.0.0.1:9",)),
    "config": (None, None),
    "strict": (True, True),
    "discover": (True, True),
    "services": ("embedded", "embedded"),
    "redis_url": ("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
    "database_url": ("postgresql://u:p@127.0.0.1:1/d", "postgresql://u:p@127.0.0.1:1/d"),
    "ready_timeout": ("7.5", 7.5),
    "rate_budget": ("50", 50),
    "seed": ("42", 42),
    "fuzz_examples": ("3", 3),
    "python": ("/usr/bin/python3", "/usr/bin/python3"),
    "report": ("out/score.md", __import__("pathlib").Path("out/score.md")),
    "redis_image": ("redis:7.2", "redis:7.2"),
    "postgres_image": ("postgres:16.4", "postgres:16.4"),
    "baseline": (None, None),  # the file must exist: test_baseline_options_read_a_file
    "baseline_update": (None, None),
}


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    assert "makrx contract suite" in text
    for opt in OPTIONS:
        assert opt.flag in text, opt.flag
        assert opt.ini in text, opt.ini


@pytest.mark.parametrize("opt", [o for o in OPTIONS if SAMPLES[o.name][0] is not None], ids=lambda o: o.name)
def test_option_on_the_command_line(pytester: pytest.Pytester, opt) -> None:
    raw, expected = SAMPLES[opt.name]
    args = [opt.flag] if opt.kind == "bool" else [f"{opt.flag}={raw}"]
    config = pytester.parseconfigure(*args)
    assert getattr(resolve_config(config), opt.name) == expected


@pytest.mark.parametrize("opt", [o for o in OPTIONS if SAMPLES[o.name][0] is not None], ids=lambda o: o.name)
def test_option_as_ini_key(pytester: pytest.Pytester, opt) -> None:
    raw, expected = SAMPLES[opt.name]
    pytester.makeini(f"[pytest]\n{opt.ini} = {str(raw).lower() if opt.kind == 'bool' else raw}\n")
    config = pytester.parseconfigure()
    assert getattr(resolve_config(config), opt.name) == expected


def test_config_option_reads_a_file(pytester: pytest.Pytester) -> None:
    path = pytester.makefile(".toml", settings='client_id = "x-api"\n')
    config = pytester.parseconfigure(f"--makrx-config={path}", "--makrx-target=http://127.0.0.1:9")
    assert resolve_config(config).config == path
    config_ini = pytester.makeini(f"[pytest]\nmakrx_config = {path}\n")
    assert config_ini.exists()
    assert resolve_config(pytester.parseconfigure()).config == path


def test_command_line_beats_ini_beats_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAKRX_SERVICES", "external")
    assert resolve_config(pytester.parseconfigure()).services == "external"
    pytester.makeini("[pytest]\nmakrx_services = docker\n")
    assert resolve_config(pytester.parseconfigure()).services == "docker"
    assert resolve_config(pytester.parseconfigure("--makrx-services=embedded")).services == "embedded"


def test_a_bad_choice_is_one_clear_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--makrx-services=kubernetes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--makrx-services='kubernetes' is not one of auto, external, docker, embedded*"])


def test_strict_markers_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.contract("X-1", level="SHOULD")
        @pytest.mark.cors
        def test_x():
            pass
    """)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_baseline_options_read_a_file(pytester: pytest.Pytester) -> None:
    path = pytester.makefile(".json", baseline='{"contracts": []}')
    config = pytester.parseconfigure(f"--makrx-baseline={path}", "--makrx-baseline-update")
    assert (resolve_config(config).baseline, resolve_config(config).baseline_update) == (path, True)
    pytester.makeini(f"[pytest]\nmakrx_baseline = {path}\nmakrx_baseline_update = true\n")
    config = pytester.parseconfigure()
    assert (resolve_config(config).baseline, resolve_config(config).baseline_update) == (path, True)
