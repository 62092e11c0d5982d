"""The pytest plugin: options, markers, the session fixtures that start everything, and failure reports."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .client import ContractClient
from .config import MakrxConfig, add_options, resolve_config
from .contract import AREAS, SHOULD, ContractViolation, contract_of
from .errors import ConfigError, HarnessError
from .issuer import Issuer
from .issuer.catalogue import BadTokens
from .issuer.fixtures import TokenMaker
from .ports import SourceAddresses
from .watchdog import start_watchdog
from .target.launcher import RunningTarget, TargetLauncher
from .target.resolve import TargetSpec, resolve_target

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
_config_key = pytest.StashKey[MakrxConfig]()
_spec_key = pytest.StashKey[TargetSpec | None]()
_target_key = pytest.StashKey[RunningTarget]()
_client_key = pytest.StashKey[ContractClient]()


class MakrxShouldWarning(UserWarning):
    """A SHOULD-level contract failed; reported, but fails the run only under --makrx-strict."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "contract(id, level='MUST'): the MakrX contract a test checks and its level.")
    for name, title in AREAS.items():
        config.addinivalue_line("markers", f"{name}: contracts of the {title} area.")
    try:
        makrx = resolve_config(config)
        spec = resolve_target(makrx.target, makrx.config) if makrx.target else None
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_config_key] = makrx
    config.stash[_spec_key] = spec
    if spec is not None and config.args_source != pytest.Config.ArgsSource.ARGS:
        # `pytest --makrx-target=x` alone runs the bundled contract suite.
        config.args[:] = [str(CONTRACTS_DIR)]
    _install_sigterm_handler(config)


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


def pytest_report_header(config: pytest.Config) -> list[str]:
    spec = config.stash.get(_spec_key, None)
    if spec is None:
        return []
    where = spec.url or f"{spec.path} (app {spec.app})"
    return [f"makrx target: {where}"]


def _fail_run(exc: HarnessError) -> None:
    """A harness problem ends the whole run with its one message, instead of a wall of errors."""
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
def makrx_target_spec(pytestconfig: pytest.Config) -> TargetSpec:
    """The target named by --makrx-target (skips when none was given)."""
    spec = pytestconfig.stash.get(_spec_key, None)
    if spec is None:
        pytest.skip("no target: pass --makrx-target=<backend dir>|reference|<url>")
    return spec


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
def makrx_services(makrx_config: MakrxConfig, makrx_workdir: Path, pytestconfig: pytest.Config) -> Iterator[Any]:
    """Redis and Postgres from the provider chain (external, docker, embedded)."""
    from .services import provide_services

    try:
        services = provide_services(makrx_config.services, redis_url=makrx_config.redis_url,
                                    database_url=makrx_config.database_url, workdir=makrx_workdir / "services")
    except HarnessError as exc:
        _fail_run(exc)
    _say(pytestconfig, f"makrx services: {services.provider} ({services.reason})")
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def makrx_issuer(makrx_config: MakrxConfig, pytestconfig: pytest.Config) -> Iterator[Issuer]:
    """The fake Keycloak issuer (realm makrx) on a free loopback port; usable without a target."""
    spec = pytestconfig.stash.get(_spec_key, None)
    audience = {"default_audience": spec.client_id} if spec is not None else {}
    try:
        issuer = Issuer(realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed,
                        **audience).start()
    except HarnessError as exc:
        _fail_run(exc)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="session")
def make_token(makrx_issuer: Issuer) -> TokenMaker:
    """Mint a valid access token (audience: the target's client id); keywords override claims."""
    return TokenMaker(makrx_issuer, makrx_issuer.default_audience)


@pytest.fixture(scope="session")
def bad_token(makrx_issuer: Issuer) -> BadTokens:
    """The bad-token catalogue for the target's audience: ``bad_token("alg_none")``, ``bad_token.cases``."""
    return BadTokens(makrx_issuer, makrx_issuer.default_audience)


@pytest.fixture(scope="session")
def makrx_launcher(makrx_target_spec: TargetSpec, makrx_config: MakrxConfig, makrx_workdir: Path,
                   request: pytest.FixtureRequest) -> Iterator[TargetLauncher]:
    """Starts instances of a path target (skips for URL targets, which the harness cannot restart)."""
    if makrx_target_spec.is_url:
        pytest.skip(f"needs to start or reconfigure the backend; {makrx_target_spec.url} is a running URL target")
    services = request.getfixturevalue("makrx_services")
    issuer = request.getfixturevalue("makrx_issuer")
    launcher = TargetLauncher(makrx_target_spec, services=services, issuer=issuer, workdir=makrx_workdir,
                              ready_timeout=makrx_config.ready_timeout)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="session")
def makrx_target(makrx_target_spec: TargetSpec, request: pytest.FixtureRequest) -> RunningTarget:
    """The backend under test, started once per session (or the URL target as it is)."""
    if makrx_target_spec.is_url:
        return RunningTarget(spec=makrx_target_spec, base_url=str(makrx_target_spec.url))
    launcher: TargetLauncher = request.getfixturevalue("makrx_launcher")
    try:
        target = launcher.launch(name=makrx_target_spec.name)
    except HarnessError as exc:
        _fail_run(exc)
    request.config.stash[_target_key] = target
    return target


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
def makrx_client(makrx_target: RunningTarget, makrx_client_factory: Callable[..., ContractClient],
                 request: pytest.FixtureRequest) -> ContractClient:
    """An HTTP client for the target; its exchanges appear in the test's failure report."""
    client = makrx_client_factory(makrx_target)
    request.node.stash[_client_key] = client
    return client


# ---------------------------------------------------------------- reporting


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A failed SHOULD contract becomes a MakrxShouldWarning unless --makrx-strict."""
    try:
        return (yield)
    except AssertionError as exc:
        info = contract_of(item)
        if info is None or info.level is not SHOULD or item.config.stash[_config_key].strict:
            raise
        title = exc.title if isinstance(exc, ContractViolation) else str(exc).splitlines()[0]
        warnings.warn(MakrxShouldWarning(f"{info.id} [SHOULD] {title}"), stacklevel=1)
        return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    info = contract_of(item)
    if info is not None:
        report.user_properties.append(("contract_id", info.id))
        report.user_properties.append(("contract_level", info.level.value))
    if report.failed and call.excinfo is not None:
        if isinstance(call.excinfo.value, ContractViolation):
            head = f"{info.id} [{info.level.value}] " if info else ""
            report.longrepr = head + str(call.excinfo.value)
        target = item.config.stash.get(_target_key, None)
        if target is not None and target.log_path is not None:
            report.sections.append(("backend log (last lines)", target.log_tail(20)))
    return report
