"""The pytest plugin: options, markers, the session fixtures that start everything, and failure reports."""

from __future__ import annotations

import dataclasses
import gc
import glob
import json
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import __version__, discovery, timings
from .client import ContractClient, tls_context
from .config import MakrxConfig, add_options, resolve_config
from .contract import AREAS, SHOULD, ContractViolation, contract_of
from .errors import ConfigError, HarnessError, TargetError
from .issuer import Issuer
from .issuer.catalogue import BadTokens
from .isolation import isolate
from .issuer.fixtures import TokenMaker
from .ports import SourceAddresses
from .process import die_with_parent
from .baseline import FIXED, KNOWN, Baseline, case_of, diff, key_text, merged, recorded_keys
from .report import WAIVED, WARNED, Scorecard
from .suite import CONTRACTS_DIR, FIXTURES_PLUGIN, ContractSuite
from .target.launcher import RunningTarget, TargetLauncher
from .target.resolve import TargetSpec, resolve_target
from .target.settings import Waiver
from .target.shared_forks import SharedForkServers
from .watchdog import start_watchdog

_config_key = pytest.StashKey[MakrxConfig]()
_specs_key = pytest.StashKey[list[TargetSpec]]()
_targets_key = pytest.StashKey[dict[str, RunningTarget]]()
_boot_errors_key = pytest.StashKey[dict[str, str]]()
_left_out_key = pytest.StashKey[list[str]]()
_unbooted_first_key = pytest.StashKey[dict[str, str]]()
_scorecard_key = pytest.StashKey[Scorecard]()
_fork_servers_key = pytest.StashKey[SharedForkServers]()
_baseline_key = pytest.StashKey[Baseline | None]()
_provider_key = pytest.StashKey[tuple[str, str]]()


class MakrxShouldWarning(UserWarning):
    """A SHOULD-level contract failed; reported, but fails the run only under --makrx-strict."""


class MakrxWaivedWarning(UserWarning):
    """A contract failed under a waiver of the target's settings; reported, not failed."""


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
    try:
        makrx = resolve_config(config)
        specs, left_out = _resolve_all(makrx)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    specs = _labelled(specs)
    config.stash[_config_key] = makrx
    config.stash[_specs_key] = specs
    config.stash[_targets_key] = {}
    config.stash[_boot_errors_key] = {}
    config.stash[_left_out_key] = left_out
    try:
        config.stash[_baseline_key] = (Baseline.load(makrx.baseline, missing_ok=makrx.baseline_update)
                                       if makrx.baseline is not None else None)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if specs:
        config.pluginmanager.import_plugin(FIXTURES_PLUGIN)
    if specs and not hasattr(config, "workerinput"):  # the xdist controller (or a plain run) reports
        scorecard = Scorecard(meta={"targets": ", ".join(s.raw for s in specs), "harness": __version__,
                                    "strict": str(makrx.strict).lower(), "services": makrx.services})
        scorecard.notes += left_out
        config.stash[_scorecard_key] = scorecard
        config.pluginmanager.register(scorecard, "makrx-scorecard")
    _install_sigterm_handler(config)
    if hasattr(config, "workerinput"):
        _follow_controller(config)


def _follow_controller(config: pytest.Config) -> None:
    """An xdist worker outlives a killed controller by 15 s (execnet's own timeout), its servers with it:
    the controller's death is SIGTERM to the worker instead, which unwinds it like Ctrl-C."""
    controller = config.workerinput.get("makrx_controller")  # type: ignore[attr-defined]
    if controller is not None and not die_with_parent(controller):
        pytest.exit("the xdist controller of this worker is gone", returncode=pytest.ExitCode.INTERRUPTED)


def _labelled(specs: list[TargetSpec]) -> list[TargetSpec]:
    """Targets that share a directory name are labelled with their parent too (`a/app`, `b/app`); the
    bundled app keeps the name it was asked for, `reference`."""
    names = [spec.name for spec in specs]
    return [dataclasses.replace(spec, label="reference" if spec.raw == "reference"
                                else f"{spec.path.parent.name}/{spec.name}")
            if names.count(spec.name) > 1 and spec.path is not None else spec for spec in specs]


def _resolve_all(makrx: MakrxConfig) -> tuple[list[TargetSpec], list[str]]:
    """Every target, and one line for each directory a glob matched that is not a backend: a monorepo's
    `backends/*` also matches shared packages (`backends/utils`), which must not stop the others."""
    specs: list[TargetSpec] = []
    left_out: list[str] = []
    for raw in makrx.target:
        matched = _expand((raw,))
        for path in matched:
            try:
                specs.append(resolve_target(path, makrx.config))
            except ConfigError as exc:
                if path == raw:
                    raise
                left_out.append(f"{path}: left out of --makrx-target={raw}: {exc.message}")
    if makrx.target and not specs:
        raise ConfigError(f"no backend among the targets ({'; '.join(left_out)})", fix="check the glob")
    return specs, left_out


def _expand(raw_targets: tuple[str, ...]) -> list[str]:
    """Globs (`backends/*`) become the directories they match, in order; the rest stay as given."""
    expanded: list[str] = []
    for raw in raw_targets:
        if any(ch in raw for ch in "*?[") and not raw.startswith(("http://", "https://")):
            matches = sorted(p for p in glob.glob(raw) if Path(p).is_dir())
            if not matches:
                raise ConfigError(f"--makrx-target={raw} matches no directory", fix="check the glob")
            expanded += matches
        else:
            expanded.append(raw)
    return expanded


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Several targets: every contract runs once per target (one session-scoped backend each)."""
    specs = metafunc.config.stash.get(_specs_key, [])
    if len(specs) > 1 and "makrx_target_spec" in metafunc.fixturenames:
        metafunc.parametrize("makrx_target_spec", specs, indirect=True, scope="session",
                             ids=[spec.display for spec in specs])


# Modules whose contracts wait on the conventions' timers (JWKS TTL, refetch cooldowns, Redis recovery):
# the longest scopes under -n (bench/bench_gate.py), handed out first so none of them starts last.
_LONG_MODULES = ("test_rate_limit.py", "test_auth_jwks_outage.py", "test_auth_keys.py", "test_auth.py")


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` for a contract run. A worker mostly waits — on its backend's answers and on the
    conventions' timers (JWKS TTL, cooldowns, Redis recovery) — and keeps about half a core busy, so two
    workers per core; one target has four long modules to run side by side, several targets get a worker
    each. tryfirst: xdist's own answer (one per core) wins when xdist happens to load after this plugin."""
    try:
        targets = _expand(resolve_config(config).target)
    except ConfigError:
        return None  # pytest_configure says what is wrong
    if not targets:
        return None
    cores = len(os.sched_getaffinity(0))
    return max(1, min(2 * cores, 4 if len(targets) == 1 else len(targets)))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, once per worker before it starts: the worker learns the controller's pid (to die
    with it), and forks its backends from one fork server per target, started here with the first worker,
    rather than each importing the packages again."""
    config = node.config
    node.workerinput["makrx_controller"] = os.getpid()
    specs = config.stash.get(_specs_key, [])
    if not specs:
        return
    if _fork_servers_key not in config.stash:
        config.stash[_fork_servers_key] = SharedForkServers(specs, temp_root=_temp_root(),
                                                            python=config.stash[_config_key].python)
    node.workerinput["makrx_fork_servers"] = config.stash[_fork_servers_key].names


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_fork_servers_key, None)
    if shared is not None:
        shared.close()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Contracts under `-n` (default `--dist load`). One target: its modules are spread over the workers,
    longest first, each whole on one worker (so a module's extra backend instances boot once). Several
    targets: each target's contracts go to one worker, so every backend boots once, not once per worker.
    (xdist's own `loadgroup` relies on rewriting node ids, which pytest 9.2 no longer allows.)"""
    specs = config.stash.get(_specs_key, [])
    if not specs or config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    labels = sorted((spec.display for spec in specs), key=len, reverse=True)

    def target_of(nodeid: str) -> str:
        params = nodeid.partition("[")[2]  # the target's id leads the parametrisation ids
        return next((label for label in labels if params == f"{label}]" or params.startswith(f"{label}-")),
                    nodeid)

    def module_of(nodeid: str) -> str:
        return nodeid.partition("::")[0]

    def length(scope: str) -> int:
        name = scope.rpartition("/")[2]
        return len(_LONG_MODULES) - _LONG_MODULES.index(name) if name in _LONG_MODULES else 0

    class ContractScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return module_of(nodeid) if len(specs) == 1 else target_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            longest = max(self.workqueue, key=length)
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return ContractScheduling(config, log)


def _spec_of(item: pytest.Item) -> TargetSpec | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "makrx_target_spec" in callspec.params:
        return callspec.params["makrx_target_spec"]
    specs = item.config.stash.get(_specs_key, [])
    return specs[0] if specs else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    makrx = config.stash.get(_config_key, None)
    if makrx is not None and makrx.discover:
        keep = [item for item in items if (info := contract_of(item)) and info.id in discovery.DISCOVER_CONTRACTS]
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep
    for item in items:
        info = contract_of(item)
        spec = _spec_of(item)
        if info is None:
            continue
        target = spec.display if spec else ""
        callspec = getattr(item, "callspec", None)
        item.user_properties += [("contract_id", info.id), ("contract_level", info.level.value),
                                 ("contract_area", info.area), ("makrx_target", target),
                                 ("makrx_case", case_of(callspec.id if callspec else None, target))]


def _install_sigterm_handler(config: pytest.Config) -> None:
    """SIGTERM unwinds like Ctrl-C, so fixtures stop every server before the process ends."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_sigterm)
        config.add_cleanup(lambda: signal.signal(signal.SIGTERM, previous))
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
    for spec in config.stash.get(_specs_key, []):
        lines.append(f"makrx target: {spec.url or f'{spec.path} (app {spec.app})'}")
        if not spec.url:
            lines.append(f"  settings: {spec.settings.source or 'none (no makrx-contract.toml or [tool.makrx-contract])'}"
                         "; found by asking the backend (listed at the end): "
                         + ", ".join(discovery.to_discover(spec.settings)))
    makrx = config.stash.get(_config_key, None)
    if makrx is not None and any(not spec.url for spec in config.stash.get(_specs_key, [])):
        from .services import choose

        chosen = choose(makrx.services, redis_url=makrx.redis_url, database_url=makrx.database_url,
                        redis_image=makrx.redis_image, postgres_image=makrx.postgres_image)
        lines.append(f"makrx services: --makrx-services={makrx.services} chooses {chosen}")
    if makrx is not None and makrx.baseline is not None:
        baseline = config.stash[_baseline_key]
        lines.append(f"makrx baseline: {makrx.baseline} ({len(baseline.keys) if baseline else 0} known failures"
                     f"{'; rewritten at the end' if makrx.baseline_update else ''})")
    return lines + config.stash.get(_left_out_key, [])


def _fail_run(exc: HarnessError, session: pytest.Session) -> None:
    """A harness problem ends the whole run with its one message, instead of a wall of errors. An xdist
    worker also hands the message to its controller as the reason to stop (`shouldstop`): a worker that
    only exited would leave its scheduled tests behind, which xdist reports as an INTERNALERROR."""
    if hasattr(session.config, "workerinput"):
        session.shouldstop = str(exc)
    pytest.exit(str(exc), returncode=pytest.ExitCode.TESTS_FAILED)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def makrx_config(pytestconfig: pytest.Config) -> MakrxConfig:
    """The resolved `--makrx-*` settings of this run."""
    return pytestconfig.stash[_config_key]


@pytest.fixture(scope="session")
def makrx_target_spec(request: pytest.FixtureRequest) -> TargetSpec:
    """The target named by --makrx-target (one per parametrised session when there are several)."""
    specs = request.config.stash.get(_specs_key, [])
    if not specs:
        pytest.skip("no target: pass --makrx-target=<backend dir>|reference|<url>")
    return getattr(request, "param", specs[0])


def _temp_root() -> str | None:
    """MAKRX_TMPDIR, else /dev/shm when usable: a Postgres data dir is ~1,300 files, and creating
    them on a busy disk can cost a second where tmpfs takes milliseconds."""
    chosen = os.environ.get("MAKRX_TMPDIR")
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


@pytest.fixture(scope="session")
def makrx_workdir() -> Iterator[Path]:
    """This run's private temp dir (logs, data dirs); removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="makrx-", dir=_temp_root()))
    path.chmod(0o755)  # servers run as an unprivileged user when pytest runs as root
    watchdog = start_watchdog(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        watchdog.terminate()
        watchdog.wait(5)


@pytest.fixture(scope="session")
def makrx_services(makrx_config: MakrxConfig, makrx_workdir: Path, pytestconfig: pytest.Config,
                   request: pytest.FixtureRequest) -> Iterator[Any]:
    """Redis and Postgres from the provider chain (external, docker, embedded)."""
    from .services import provide_services

    try:
        with timings.phase("services"):
            services = provide_services(makrx_config.services, redis_url=makrx_config.redis_url,
                                        database_url=makrx_config.database_url, workdir=makrx_workdir / "services",
                                        redis_image=makrx_config.redis_image,
                                        postgres_image=makrx_config.postgres_image)
    except HarnessError as exc:
        _fail_run(exc, request.session)
    _say(pytestconfig, f"makrx services: {services.provider} ({services.reason})")
    pytestconfig.stash[_provider_key] = (services.provider, services.reason)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def makrx_issuer(makrx_config: MakrxConfig, pytestconfig: pytest.Config,
                 request: pytest.FixtureRequest) -> Iterator[Issuer]:
    """The fake Keycloak issuer (realm makrx) on a free loopback port; usable without a target."""
    specs = pytestconfig.stash.get(_specs_key, [])
    audience = {"default_audience": specs[0].client_id} if specs else {}
    try:
        with timings.phase("issuer"):
            issuer = Issuer(realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed,
                            **audience).start()
    except HarnessError as exc:
        _fail_run(exc, request.session)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="session")
def make_token(makrx_issuer: Issuer) -> TokenMaker:
    """Mint a valid access token (audience: the current target's client id); keywords override claims."""
    return TokenMaker(makrx_issuer)


@pytest.fixture(scope="session")
def bad_token(makrx_issuer: Issuer) -> BadTokens:
    """The bad-token catalogue for the current target: ``bad_token("alg_none")``, ``bad_token.cases``."""
    return BadTokens(makrx_issuer)


@pytest.fixture(scope="session")
def makrx_launcher(makrx_target_spec: TargetSpec, makrx_config: MakrxConfig, makrx_workdir: Path,
                   request: pytest.FixtureRequest) -> Iterator[TargetLauncher]:
    """Starts instances of a path target (skips for URL targets, which the harness cannot restart)."""
    if makrx_target_spec.is_url:
        pytest.skip(f"needs to start or reconfigure the backend; {makrx_target_spec.url} is a running URL target")
    try:
        # First, so its fork server imports the backend's packages while the services start.
        shared = getattr(request.config, "workerinput", {}).get("makrx_fork_servers", {})
        launcher = TargetLauncher(makrx_target_spec, workdir=makrx_workdir, ready_timeout=makrx_config.ready_timeout,
                                  python=makrx_config.python, fork_server=shared.get(makrx_target_spec.display))
    except HarnessError as exc:
        _boot_failed(request, makrx_target_spec, exc)
    try:
        launcher.services = request.getfixturevalue("makrx_services")
        launcher.issuer = request.getfixturevalue("makrx_issuer")
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="session")
def makrx_target(makrx_target_spec: TargetSpec, request: pytest.FixtureRequest) -> RunningTarget:
    """The backend under test, started once per session (or the URL target as it is)."""
    spec = makrx_target_spec
    booted = request.config.stash[_boot_errors_key]
    if spec.display in booted:
        pytest.fail(f"{spec.display} could not boot (see the first error of this target)", pytrace=False)
    if spec.is_url:
        _check_answers(str(spec.url), request, spec)
        return RunningTarget(spec=spec, base_url=str(spec.url))
    issuer = request.getfixturevalue("makrx_issuer")
    issuer.tokens.default_audience = spec.client_id  # make_token follows the target being checked
    issuer.tokens.default_roles = spec.settings.token_roles
    launcher: TargetLauncher = request.getfixturevalue("makrx_launcher")
    try:
        target = launcher.launch(name=spec.display.replace("/", "_"))
    except HarnessError as exc:
        _boot_failed(request, spec, exc)
    request.config.stash[_targets_key][spec.display] = target
    return target


def _check_answers(url: str, request: pytest.FixtureRequest, spec: TargetSpec) -> None:
    """A URL target that does not answer HTTP is one message, not a connection error in every contract."""
    try:
        with httpx.Client(base_url=url, timeout=10.0, verify=tls_context()) as client:
            client.get("/health")
    except httpx.TransportError as exc:
        _boot_failed(request, spec, TargetError(f"{url} does not answer: {type(exc).__name__}: {exc}",
                                                fix="start the backend first, or check the URL and port"))


def _boot_failed(request: pytest.FixtureRequest, spec: TargetSpec, exc: HarnessError) -> None:
    """One target that cannot boot: one message. Alone it ends the run; in a matrix, its tests error."""
    request.config.stash[_boot_errors_key][spec.display] = exc.message
    if len(request.config.stash[_specs_key]) == 1:
        _fail_run(exc, request.session)
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def makrx_source_addresses(makrx_config: MakrxConfig) -> SourceAddresses:
    """Distinct loopback source addresses, one per client."""
    return SourceAddresses(makrx_config.seed)


@pytest.fixture
def makrx_client_factory(makrx_source_addresses: SourceAddresses, request: pytest.FixtureRequest
                         ) -> Iterator[Callable[..., ContractClient]]:
    """Make clients for any running instance; each has a fresh source address; all closed after the test."""
    clients: list[ContractClient] = []

    def make(target: RunningTarget | str, **kwargs: Any) -> ContractClient:
        base_url = target if isinstance(target, str) else target.base_url
        client = ContractClient(base_url, source_address=makrx_source_addresses.next(), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def makrx_client(makrx_target: RunningTarget, makrx_client_factory: Callable[..., ContractClient]) -> ContractClient:
    """An HTTP client for the target; its exchanges appear in the test's failure report."""
    return makrx_client_factory(makrx_target)


# ---------------------------------------------------------------- reporting


def _waiver_for(item: pytest.Item, contract: str) -> Waiver | None:
    spec = _spec_of(item)
    return next((w for w in spec.settings.waivers if w.contract == contract), None) if spec else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A failure under a valid waiver, or of a SHOULD contract without --makrx-strict, becomes a warning; one
    the baseline records is `known`; a pass the baseline records as a failure is `fixed`."""
    baselined = _in_baseline(item)
    try:
        with timings.in_test_call():
            outcome = yield
    except Exception as exc:
        info = contract_of(item)
        if info is None:
            raise
        title = exc.title if isinstance(exc, ContractViolation) else (str(exc).splitlines() or [repr(exc)])[0]
        waiver = _waiver_for(item, info.id)
        violated = isinstance(exc, AssertionError)  # anything else (no answer, a crash) is no SHOULD's warning
        if violated and waiver is not None and not waiver.expired():
            item.user_properties += [("makrx_outcome", WAIVED),
                                     ("makrx_reason", f"{title} (waived until {waiver.expires}: {waiver.reason})")]
            warnings.warn(MakrxWaivedWarning(f"{info.id} waived until {waiver.expires}: {title}"), stacklevel=1)
            return None
        if baselined and waiver is None:  # a waiver wins, also once expired
            item.user_properties += [("makrx_outcome", KNOWN), ("makrx_reason", f"{title} (known: in the baseline)")]
            return None
        if not violated:
            raise
        if info.level is SHOULD and not item.config.stash[_config_key].strict:
            item.user_properties += [("makrx_outcome", WARNED), ("makrx_reason", title)]
            warnings.warn(MakrxShouldWarning(f"{info.id} [SHOULD] {title}"), stacklevel=1)
            return None
        if waiver is not None:
            exc.args = (f"{exc.args[0] if exc.args else ''}\n\n(waiver expired on {waiver.expires}: "
                        f"{waiver.reason})",)
        raise
    if baselined:
        item.user_properties += [("makrx_outcome", FIXED),
                                 ("makrx_reason", "fixed — update the baseline (--makrx-baseline-update)")]
    return outcome


def _in_baseline(item: pytest.Item) -> bool:
    baseline = item.config.stash.get(_baseline_key, None)
    if baseline is None or contract_of(item) is None:
        return False
    props = dict(item.user_properties)
    return (str(props["makrx_target"]), str(props["contract_id"]), str(props["makrx_case"])) in baseline


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    discovery.attach(item.config, report)
    provider = item.config.stash.get(_provider_key, None)
    if provider is not None and report.when == "teardown":  # the scorecard names who served the run
        report.user_properties += [("makrx_provider", provider[0]), ("makrx_provider_reason", provider[1])]
    spec = _spec_of(item)
    boot_error = item.config.stash[_boot_errors_key].get(spec.display) if spec else None
    if boot_error is not None and report.failed:
        report.user_properties.append(("makrx_boot_error", boot_error))
    if report.failed and call.excinfo is not None:
        info = contract_of(item)
        error = call.excinfo.value
        head = f"{info.id} [{info.level.value}] " if info else ""
        transport = _transport_error(error)
        if isinstance(error, ContractViolation):
            report.longrepr = head + str(error)
            report.user_properties.append(("makrx_reason", f"{error.title} (received: {error.received})"))
        elif transport is not None:
            cause = f"{type(transport).__name__}: {transport or 'no detail'}"
            report.longrepr = (f"{head}the backend did not answer a request of the contract\n"
                               f"  Request: {_request_line(transport)}\n  Cause: {cause}")
            report.user_properties.append(("makrx_reason", f"no answer ({cause})"))
        target = item.config.stash[_targets_key].get(spec.display) if spec else None
        if target is not None and target.log_path is not None:
            report.sections.append(("backend log (last lines)", target.log_tail(20)))
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
    first = config.stash.setdefault(_unbooted_first_key, {})  # target -> the test that shows the message
    if first.setdefault(str(props.get("makrx_target", "")), report.nodeid) == report.nodeid:
        return None
    return "unbooted", "b", "UNBOOTED"


def _transport_error(error: BaseException) -> httpx.TransportError | None:
    """The timeout, reset or refusal behind a contract's error, also inside hypothesis' FlakyFailure and
    exception groups: a backend that stops answering is the contract's failure, not a traceback."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, httpx.TransportError):
            return current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))
    return None


def _request_line(error: httpx.TransportError) -> str:
    try:
        return f"{error.request.method} {error.request.url}"
    except RuntimeError:  # raised before a request was attached
        return "(unknown)"


def _expired_waivers(config: pytest.Config) -> list[str]:
    return [f"{spec.display}: waiver for {w.contract} expired on {w.expires} ({w.reason})"
            for spec in config.stash.get(_specs_key, []) for w in spec.settings.waivers if w.expired()]


def _stale_waivers(config: pytest.Config, scorecard: Scorecard) -> list[str]:
    results = {(t, c): Scorecard.verdict(rows).outcome for (t, _, c), rows in scorecard.by_contract().items()}
    return [f"{spec.display}: waiver for {w.contract} is stale, the contract passes"
            for spec in config.stash.get(_specs_key, []) for w in spec.settings.waivers
            if results.get((spec.display, w.contract)) == "passed"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # The xdist controller stops on a worker's harness message as an interruption (`_fail_run`): the same
    # failure as a serial run's, so it exits 1 as that one does, not 2.
    stopped_by = getattr(session.config.pluginmanager.get_plugin("dsession"), "shouldstop", "")
    if str(stopped_by).startswith("[makrx") and session.exitstatus == pytest.ExitCode.INTERRUPTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    scorecard = session.config.stash.get(_scorecard_key, None)
    if scorecard is None:
        return
    makrx = session.config.stash[_config_key]
    baseline = session.config.stash.get(_baseline_key, None)
    orphans = scorecard.fail_orphan_skips(baseline.keys if baseline is not None else frozenset())
    if orphans and session.exitstatus == pytest.ExitCode.OK and any(
            row.outcome == "failed" for row in scorecard.rows.values()):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    expired = _expired_waivers(session.config)
    fixed = [f"fixed — update the baseline: {key_text((row.target, row.contract, row.case))}"
             for row in scorecard.rows.values() if row.outcome == FIXED]
    scorecard.notes += orphans + expired + _stale_waivers(session.config, scorecard) + fixed
    if expired and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # an expired waiver fails the gate
    if fixed and makrx.strict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # under --makrx-strict a baseline only shrinks
    if baseline is not None and makrx.baseline_update:
        scorecard.notes += _update_baseline(baseline, scorecard)
    # A lone target that cannot boot ends the run before any report reaches the scorecard (`_fail_run`); its
    # card still says why (serially from the stash, under xdist from the worker's message that stopped the
    # run) and, as every card, the gate's verdict: what a merge of per-job cards needs (harness/merge.py).
    unbooted = dict(session.config.stash[_boot_errors_key])
    lead = f"[{TargetError.prefix}] "
    if str(stopped_by).startswith(lead) and len(session.config.stash[_specs_key]) == 1:
        unbooted.setdefault(session.config.stash[_specs_key][0].display,
                            str(stopped_by).removeprefix(lead).split("\n", 1)[0])
    for target, error in unbooted.items():
        if target not in scorecard.boot_errors:
            scorecard.boot_errors[target] = error
            scorecard.notes.append(f"{target} could not boot: {error}")
    scorecard.meta["gate"] = "passed" if session.exitstatus == pytest.ExitCode.OK else "failed"
    scorecard.publish(session.config.stash[_config_key].report)


def _update_baseline(baseline: Baseline, scorecard: Scorecard) -> list[str]:
    """Rewrite the baseline with this run's failures (keeping what the run did not judge); one line per
    failure added or removed, so none is added silently."""
    ran = {(row.target, row.contract) for row in scorecard.rows.values()}
    document = merged(baseline, scorecard.to_json(), ran)
    baseline.path.parent.mkdir(parents=True, exist_ok=True)
    baseline.path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    added, removed = diff(baseline.keys, recorded_keys(document))
    return ([f"baseline {baseline.path}: added {line}" for line in added]
            + [f"baseline {baseline.path}: removed {line}" for line in removed]
            + [f"baseline {baseline.path} rewritten: {len(added)} added, {len(removed)} removed"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    scorecard = config.stash.get(_scorecard_key, None)
    if scorecard is None or not scorecard.rows:
        return
    terminalreporter.section("makrx contracts")
    for note in scorecard.notes:
        terminalreporter.write_line(note, red=True)
    for line in discovery.render_toml(scorecard.discovered):
        terminalreporter.write_line(line)
    for line in scorecard.area_lines():
        terminalreporter.write_line(line)
    report = config.stash[_config_key].report
    if report is not None:
        terminalreporter.write_line(f"scorecard: {report} (and {report.with_suffix('.json').name})")
