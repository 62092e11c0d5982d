"""The pytest plugin's hooks: options and markers, isolation from the invoking directory, xdist wiring,
the baseline and the scorecard. The fixtures live in `harness/fixtures.py`, the targets' resolution in
`harness/backend/targets.py`, the worker scheduling in `harness/scheduler.py`, what a failure's report
says in `harness/failure_report.py`, how failures settle in `harness/waivers.py`, what they share in
`harness/stash.py`."""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Generator
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest

from . import __version__, discovery, stash, timings, waivers
from .backend.shared_forks import SharedForkServers
from .backend.targets import expand_globs, resolve_targets
from .baseline import FIXED, KNOWN, Baseline, case_of, key_text, rewrite
from .config import add_options, resolve_config
from .contract import AREAS, contract_of
from .errors import ConfigError, TargetError
from .failure_report import describe_failure
from .fixtures import (  # noqa: F401  (imported to register them: the fixtures of this plugin)
    bad_token,
    make_token,
    makrx_backend_python,
    makrx_client,
    makrx_client_factory,
    makrx_client_id,
    makrx_config,
    makrx_fork_server,
    makrx_issuer,
    makrx_launcher,
    makrx_services,
    makrx_source_addresses,
    makrx_target,
    makrx_target_spec,
    makrx_token_roles,
    makrx_workdir,
    temp_root,
)
from .isolation import isolate
from .issuer.key import adopt_keys, export_keys
from .issuer.keys import contract_run_keys
from .process import die_with_parent
from .report import Scorecard
from .suite import CONTRACTS_DIR, FIXTURES_PLUGIN, ContractSuite


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """A run with a target is the gate, wherever it starts: the bundled contracts, none of the invoking
    directory's test set-up (`harness/isolation.py`)."""
    namespace = early_config.known_args_namespace
    if namespace.makrx_target or early_config.getini("makrx_target") or os.environ.get("MAKRX_TARGET"):
        isolate(early_config, parser, args, default_args=[str(CONTRACTS_DIR)])


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The contracts directory is collected by module name (`harness/suite.py`)."""
    return ContractSuite.from_parent(parent, path=path) if path == CONTRACTS_DIR else None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract(id, level='MUST'): the MakrX contract a test checks and its level.")
    for name, title in AREAS.items():
        config.addinivalue_line("markers", f"{name}: contracts of the {title} area.")
    config.addinivalue_line("markers", "browser: contracts judged in headless Chromium (skip without it).")
    config.addinivalue_line(
        "markers",
        "long(rank): a module whose contracts wait on the conventions' timers; -n hands it out first, highest "
        "rank first (harness/scheduler.py).",
    )
    try:
        makrx = resolve_config(config)
        specs, left_out = resolve_targets(makrx)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[stash.CONFIG] = makrx
    config.stash[stash.SPECS] = specs
    config.stash[stash.TARGETS] = {}
    config.stash[stash.BOOT_ERRORS] = {}
    config.stash[stash.LEFT_OUT] = left_out
    try:
        config.stash[stash.BASELINE] = (
            Baseline.load(makrx.baseline, missing_ok=makrx.baseline_update) if makrx.baseline is not None else None
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if specs:
        config.pluginmanager.import_plugin(FIXTURES_PLUGIN)
    if specs and not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) reports
        scorecard = Scorecard(
            meta={
                "targets": ", ".join(s.raw for s in specs),
                "harness": __version__,
                "strict": str(makrx.strict).lower(),
                "services": makrx.services,
            }
        )
        scorecard.notes += left_out
        config.stash[stash.SCORECARD] = scorecard
        config.pluginmanager.register(scorecard, "makrx-scorecard")
    _install_sigterm_handler(config)
    if hasattr(config, "workerinput"):
        _follow_controller(config)
        adopt_keys(config.workerinput.get("makrx_issuer_keys", {}))


def _follow_controller(config: pytest.Config) -> None:
    """An xdist worker outlives a killed controller by 15 s (execnet's own timeout), its servers with it:
    the controller's death is SIGTERM to the worker instead, which unwinds it like Ctrl-C."""
    controller = config.workerinput.get("makrx_controller")  # type: ignore[attr-defined]
    if controller is not None and not die_with_parent(controller):
        pytest.exit("the xdist controller of this worker is gone", returncode=pytest.ExitCode.INTERRUPTED)


# make_token's audience and roles: the client id and token_roles of the target a test runs against
_OF_THE_TARGET = {"makrx_client_id": attrgetter("client_id"), "makrx_token_roles": attrgetter("settings.token_roles")}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Several targets: every contract runs once per target (one session-scoped backend each)."""
    specs = metafunc.config.stash.get(stash.SPECS, [])
    if len(specs) < 2 or "makrx_target_spec" not in metafunc.fixturenames:
        return
    ids = [spec.display for spec in specs]
    derived = {name: of for name, of in _OF_THE_TARGET.items() if name in metafunc.fixturenames}
    metafunc.parametrize(
        ("makrx_target_spec", *derived),
        [(spec, *(of(spec) for of in derived.values())) for spec in specs],
        indirect=["makrx_target_spec"],
        scope="session",
        ids=ids,
    )


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` for a contract run. A worker mostly waits — on its backend's answers and on the
    conventions' timers (JWKS TTL, cooldowns, Redis recovery) — and keeps about half a core busy, so two
    workers per core, at most four for one target (its long modules run side by side), a worker per
    target for several. tryfirst: xdist's own answer (one per core) wins when xdist happens to load after
    this plugin."""
    try:
        targets = expand_globs(resolve_config(config).target)
    except ConfigError:
        return None  # pytest_configure says what is wrong
    if not targets:
        return None
    cores = len(os.sched_getaffinity(0))
    return max(1, min(2 * cores, 4 if len(targets) == 1 else len(targets)))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, once per worker before it starts: the worker learns the controller's pid (to die
    with it), forks its backends from one fork server per target, started here with the first worker,
    rather than each importing the packages again, and gets the issuer's keys, made here once."""
    config = node.config
    node.workerinput["makrx_controller"] = os.getpid()
    specs = config.stash.get(stash.SPECS, [])
    if not specs:
        return
    if stash.FORK_SERVERS not in config.stash:
        config.stash[stash.FORK_SERVERS] = SharedForkServers(
            specs, temp_root=temp_root(), python=config.stash[stash.CONFIG].python
        )
    node.workerinput["makrx_fork_servers"] = config.stash[stash.FORK_SERVERS].names
    if stash.ISSUER_KEYS not in config.stash:
        seed = config.stash[stash.CONFIG].seed
        config.stash[stash.ISSUER_KEYS] = export_keys(contract_run_keys(0 if seed is None else seed))
    node.workerinput["makrx_issuer_keys"] = config.stash[stash.ISSUER_KEYS]


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(stash.FORK_SERVERS, None)
    if shared is not None:
        shared.close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Contracts under `-n` (default `--dist load`): by module for one target, by target for several
    (`harness/scheduler.py`)."""
    specs = config.stash.get(stash.SPECS, [])
    if not specs or config.getvalue("dist") != "load":
        return None
    from .scheduler import ContractScheduling

    return ContractScheduling(config, log, [spec.display for spec in specs])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    makrx = config.stash.get(stash.CONFIG, None)
    if makrx is not None and makrx.discover:
        keep = [item for item in items if (info := contract_of(item)) and info.id in discovery.DISCOVER_CONTRACTS]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
    for item in items:
        info = contract_of(item)
        spec = stash.spec_of(item)
        if info is None:
            continue
        target = spec.display if spec else ""
        callspec = getattr(item, "callspec", None)
        item.user_properties += [
            ("contract_id", info.id),
            ("contract_level", info.level.value),
            ("contract_area", info.area),
            ("makrx_target", target),
            ("makrx_case", case_of(callspec.id if callspec else None, target)),
        ]


def _install_sigterm_handler(config: pytest.Config) -> None:
    """SIGTERM unwinds like Ctrl-C, so fixtures stop every server before the process ends."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_sigterm)

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        config.add_cleanup(restore)
    except ValueError:  # not the main thread (e.g. embedded pytest.main in a thread)
        pass


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """What is imported by now (pytest, its plugins, schemathesis, the test modules) lives until the run
    ends: frozen, the collector's full passes during the run and pytest's five at exit skip it (~0.5 s of
    CPU per process, each xdist worker included)."""
    gc.freeze()


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for spec in config.stash.get(stash.SPECS, []):
        lines.append(f"makrx target: {spec.url or f'{spec.path} (app {spec.app})'}")
        if not spec.url:
            lines.append(
                f"  settings: {spec.settings.source or 'none (no makrx-contract.toml or [tool.makrx-contract])'}"
                "; found by asking the backend (listed at the end): " + ", ".join(discovery.to_discover(spec.settings))
            )
    makrx = config.stash.get(stash.CONFIG, None)
    if makrx is not None and any(not spec.url for spec in config.stash.get(stash.SPECS, [])):
        from .services import choose

        chosen = choose(
            makrx.services,
            redis_url=makrx.redis_url,
            database_url=makrx.database_url,
            redis_image=makrx.redis_image,
            postgres_image=makrx.postgres_image,
        )
        lines.append(f"makrx services: --makrx-services={makrx.services} chooses {chosen}")
    if makrx is not None and makrx.baseline is not None:
        baseline = config.stash[stash.BASELINE]
        lines.append(
            f"makrx baseline: {makrx.baseline} ({len(baseline.keys) if baseline else 0} known failures"
            f"{'; rewritten at the end' if makrx.baseline_update else ''})"
        )
    return lines + config.stash.get(stash.LEFT_OUT, [])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A contract's failure is waived, known (baseline), warned (SHOULD) or failed; a pass the baseline
    records as a failure is fixed (`harness/waivers.py`)."""
    baselined = waivers.in_baseline(item)
    try:
        with timings.in_test_call():
            yield
    except Exception as exc:
        if waivers.settle_failure(item, exc, baselined):
            return
        raise
    waivers.settle_pass(item, baselined)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    discovery.attach(item.config, report)
    provider = item.config.stash.get(stash.PROVIDER, None)
    if provider is not None and report.when == "teardown":  # the scorecard names who served the run
        report.user_properties += [("makrx_provider", provider[0]), ("makrx_provider_reason", provider[1])]
    spec = stash.spec_of(item)
    boot_error = item.config.stash[stash.BOOT_ERRORS].get(spec.display) if spec else None
    if boot_error is not None and report.failed:
        report.user_properties.append(("makrx_boot_error", boot_error))
    if report.failed and call.excinfo is not None:
        describe_failure(item, report, call.excinfo.value)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """In a matrix, a target that cannot boot errors every test of it: the first error shows the boot
    message, the others count as `unbooted` (still failures, for the exit code), not a wall of errors.
    Baseline outcomes count as `known` and `fixed`."""
    props = dict(getattr(report, "user_properties", ()))  # a CollectReport has none
    if report.when == "call" and report.passed and props.get("makrx_outcome") in (KNOWN, FIXED):
        return (KNOWN, "k", "KNOWN") if props["makrx_outcome"] == KNOWN else (FIXED, "f", "FIXED")
    if not report.failed or "makrx_boot_error" not in props:
        return None
    first = config.stash.setdefault(stash.UNBOOTED_FIRST, {})  # target -> the test that shows the message
    if first.setdefault(str(props.get("makrx_target", "")), report.nodeid) == report.nodeid:
        return None
    return "unbooted", "b", "UNBOOTED"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The xdist controller stops on a worker's harness message as an interruption (`fixtures.fail_run`): the same
    # failure as a serial run's, so it exits 1 as that one does, not 2.
    stopped_by = getattr(session.config.pluginmanager.get_plugin("dsession"), "shouldstop", "")
    if str(stopped_by).startswith("[makrx") and session.exitstatus == pytest.ExitCode.INTERRUPTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    scorecard = session.config.stash.get(stash.SCORECARD, None)
    if scorecard is None:
        return
    makrx = session.config.stash[stash.CONFIG]
    baseline = session.config.stash.get(stash.BASELINE, None)
    orphans = scorecard.fail_orphan_skips(baseline.keys if baseline is not None else frozenset())
    if (
        orphans
        and session.exitstatus == pytest.ExitCode.OK
        and any(row.outcome == "failed" for row in scorecard.rows.values())
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    expired = waivers.expired_waivers(session.config)
    fixed = [
        f"fixed — update the baseline: {key_text((row.target, row.contract, row.case))}"
        for row in scorecard.rows.values()
        if row.outcome == FIXED
    ]
    scorecard.notes += orphans + expired + waivers.stale_waivers(session.config, scorecard) + fixed
    if expired and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # an expired waiver fails the gate
    if fixed and makrx.strict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # under --makrx-strict a baseline only shrinks
    if baseline is not None and makrx.baseline_update:
        scorecard.notes += rewrite(baseline, scorecard)
    # A lone target that cannot boot ends the run before any report reaches the scorecard (`fixtures.fail_run`); its
    # card still says why (serially from the stash, under xdist from the worker's message that stopped the
    # run) and, as every card, the gate's verdict: what a merge of per-job cards needs (harness/merge.py).
    unbooted = session.config.stash[stash.BOOT_ERRORS].copy()
    lead = f"[{TargetError.prefix}] "
    if str(stopped_by).startswith(lead) and len(session.config.stash[stash.SPECS]) == 1:
        unbooted.setdefault(
            session.config.stash[stash.SPECS][0].display, str(stopped_by).removeprefix(lead).split("\n", 1)[0]
        )
    for target, error in unbooted.items():
        if target not in scorecard.boot_errors:
            scorecard.boot_errors[target] = error
            scorecard.notes.append(f"{target} could not boot: {error}")
    scorecard.meta["gate"] = "passed" if session.exitstatus == pytest.ExitCode.OK else "failed"
    scorecard.publish(session.config.stash[stash.CONFIG].report)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    scorecard = config.stash.get(stash.SCORECARD, None)
    if scorecard is None or not scorecard.rows:
        return
    terminalreporter.section("makrx contracts")
    for note in scorecard.notes:
        terminalreporter.write_line(note, red=True)
    for line in discovery.render_toml(scorecard.discovered):
        terminalreporter.write_line(line)
    for line in scorecard.area_lines():
        terminalreporter.write_line(line)
    report = config.stash[stash.CONFIG].report
    if report is not None:
        terminalreporter.write_line(f"scorecard: {report} (and {report.with_suffix('.json').name})")
