"""The session fixtures that start everything a contract needs, lazily and in order: the run's workdir →
the target's interpreter and fork server → services (Postgres, Redis) → the fake Keycloak issuer → the
target's launcher → the running target; and the clients that talk to it. Registered by the plugin
(harness/plugin.py imports them by name)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from . import stash, timings
from .backend.interpreter import backend_python
from .backend.launcher import TargetLauncher
from .backend.preload import ForkServerClient
from .backend.resolve import TargetSpec
from .backend.running import RunningTarget
from .backend.starter import fork_server_for
from .client import ContractClient, tls_context
from .config import MakrxConfig
from .errors import HarnessError, TargetError
from .issuer import Issuer
from .issuer.catalogue import BadTokens
from .issuer.fixtures import TokenMaker
from .ports import SourceAddresses
from .watchdog import start_watchdog

__all__ = [
    "bad_token",
    "fail_run",
    "make_token",
    "makrx_backend_python",
    "makrx_client",
    "makrx_client_factory",
    "makrx_client_id",
    "makrx_config",
    "makrx_fork_server",
    "makrx_issuer",
    "makrx_launcher",
    "makrx_services",
    "makrx_source_addresses",
    "makrx_target",
    "makrx_target_spec",
    "makrx_token_roles",
    "makrx_workdir",
    "temp_root",
]


def fail_run(exc: HarnessError, session: pytest.Session) -> NoReturn:
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


@pytest.fixture(scope="session")
def makrx_config(pytestconfig: pytest.Config) -> MakrxConfig:
    """The resolved `--makrx-*` settings of this run."""
    return pytestconfig.stash[stash.CONFIG]


@pytest.fixture(scope="session")
def makrx_target_spec(request: pytest.FixtureRequest) -> TargetSpec:
    """The target named by --makrx-target (one per parametrised session when there are several)."""
    specs = request.config.stash.get(stash.SPECS, [])
    if not specs:
        pytest.skip("no target: pass --makrx-target=<backend dir>|reference|<url>")
    return getattr(request, "param", specs[0])


def temp_root() -> str | None:
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
    path = Path(tempfile.mkdtemp(prefix="makrx-", dir=temp_root()))
    path.chmod(0o755)  # servers run as an unprivileged user when pytest runs as root
    watchdog = start_watchdog(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        watchdog.terminate()
        watchdog.wait(5)


@pytest.fixture(scope="session")
def makrx_services(
    makrx_config: MakrxConfig, makrx_workdir: Path, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Redis and Postgres from the provider chain (external, docker, embedded)."""
    from .services import provide_services

    try:
        with timings.phase("services"):
            services = provide_services(
                makrx_config.services,
                redis_url=makrx_config.redis_url,
                database_url=makrx_config.database_url,
                workdir=makrx_workdir / "services",
                redis_image=makrx_config.redis_image,
                postgres_image=makrx_config.postgres_image,
            )
    except HarnessError as exc:
        fail_run(exc, request.session)
    _say(pytestconfig, f"makrx services: {services.provider} ({services.reason})")
    pytestconfig.stash[stash.PROVIDER] = (services.provider, services.reason)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="session")
def makrx_issuer(
    makrx_config: MakrxConfig, pytestconfig: pytest.Config, request: pytest.FixtureRequest
) -> Iterator[Issuer]:
    """The fake Keycloak issuer (realm makrx) on a free loopback port; usable without a target."""
    specs = pytestconfig.stash.get(stash.SPECS, [])
    audience: dict[str, Any] = {"default_audience": specs[0].client_id} if specs else {}
    try:
        with timings.phase("issuer"):
            issuer = Issuer(
                realm="makrx", seed=0 if makrx_config.seed is None else makrx_config.seed, **audience
            ).start()
    except HarnessError as exc:
        fail_run(exc, request.session)
    try:
        yield issuer
    finally:
        issuer.stop()


@pytest.fixture(scope="session")
def makrx_client_id(pytestconfig: pytest.Config) -> str | None:
    """The client id of the target being checked, the audience of its tokens; None without a target (the
    issuer's default audience then). With several targets the plugin parametrizes it beside
    ``makrx_target_spec`` (`pytest_generate_tests`); this value serves the first target."""
    specs = pytestconfig.stash.get(stash.SPECS, [])
    return specs[0].client_id if specs else None


@pytest.fixture(scope="session")
def makrx_token_roles(pytestconfig: pytest.Config) -> tuple[str, ...] | None:
    """The realm roles a plain token of the target being checked carries (its ``token_roles``); None without
    a target (the issuer's default roles then). Parametrized with the target in a matrix, as
    ``makrx_client_id`` is."""
    specs = pytestconfig.stash.get(stash.SPECS, [])
    return specs[0].settings.token_roles if specs else None


@pytest.fixture(scope="session")
def make_token(
    makrx_issuer: Issuer, makrx_client_id: str | None, makrx_token_roles: tuple[str, ...] | None
) -> TokenMaker:
    """Mint a valid access token (audience: the current target's client id, realm roles: its token_roles);
    keywords override claims."""
    return TokenMaker(makrx_issuer, makrx_client_id, makrx_token_roles)


@pytest.fixture(scope="session")
def bad_token(
    makrx_issuer: Issuer, makrx_client_id: str | None, makrx_token_roles: tuple[str, ...] | None
) -> BadTokens:
    """The bad-token catalogue for the current target: ``bad_token("alg_none")``, ``bad_token.cases``."""
    return BadTokens(makrx_issuer, makrx_client_id, makrx_token_roles)


@pytest.fixture(scope="session")
def makrx_backend_python(
    makrx_target_spec: TargetSpec, makrx_config: MakrxConfig, request: pytest.FixtureRequest
) -> str:
    """The interpreter a path target's processes run with (its own venv's when set); checked before
    anything starts, so a wrong one is the run's one message."""
    try:
        return backend_python(makrx_target_spec, makrx_config.python)
    except HarnessError as exc:
        _boot_failed(request, makrx_target_spec, exc)


@pytest.fixture(scope="session")
def makrx_fork_server(
    makrx_target_spec: TargetSpec, makrx_workdir: Path, request: pytest.FixtureRequest
) -> Iterator[ForkServerClient | None]:
    """The fork server a path target's instances fork from (DESIGN.md, Performance): under xdist the
    controller's, shared by its workers, else one of this process's. None: each starts a fresh interpreter.
    The launcher takes it by argument, so it starts before the services and the issuer: its second of
    imports, which the first boot waits for, overlaps their start."""
    if makrx_target_spec.is_url:
        yield None
        return
    python = request.getfixturevalue("makrx_backend_python")
    shared = getattr(request.config, "workerinput", {}).get("makrx_fork_servers", {}).get(makrx_target_spec.display)
    forks = (
        ForkServerClient(shared) if shared is not None else fork_server_for(makrx_target_spec, python, makrx_workdir)
    )
    try:
        yield forks
    finally:
        if forks is not None:
            forks.close()


@pytest.fixture(scope="session")
def makrx_launcher(
    makrx_target_spec: TargetSpec,
    makrx_config: MakrxConfig,
    makrx_workdir: Path,
    makrx_fork_server: ForkServerClient | None,
    request: pytest.FixtureRequest,
) -> Iterator[TargetLauncher]:
    """Starts instances of a path target (skips for URL targets, which the harness cannot restart). It
    depends on the fork server by argument, so a new target's launcher closes before its fork server does;
    the rest is asked for after the skip, which a URL target's run must reach without starting services."""
    if makrx_target_spec.is_url:
        pytest.skip(f"needs to start or reconfigure the backend; {makrx_target_spec.url} is a running URL target")
    services = request.getfixturevalue("makrx_services")
    issuer = request.getfixturevalue("makrx_issuer")
    launcher = TargetLauncher(
        makrx_target_spec,
        workdir=makrx_workdir,
        services=services,
        issuer=issuer,
        fork_server=makrx_fork_server,
        python=request.getfixturevalue("makrx_backend_python"),
        ready_timeout=makrx_config.ready_timeout,
    )
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="session")
def makrx_target(makrx_target_spec: TargetSpec, request: pytest.FixtureRequest) -> RunningTarget:
    """The backend under test, started once per session (or the URL target as it is)."""
    spec = makrx_target_spec
    booted = request.config.stash[stash.BOOT_ERRORS]
    if spec.display in booted:
        pytest.fail(f"{spec.display} could not boot (see the first error of this target)", pytrace=False)
    if spec.is_url:
        _check_answers(str(spec.url), request, spec)
        return RunningTarget(spec=spec, base_url=str(spec.url))
    launcher: TargetLauncher = request.getfixturevalue("makrx_launcher")
    try:
        target = launcher.launch(name=spec.display.replace("/", "_"))
    except HarnessError as exc:
        _boot_failed(request, spec, exc)
    request.config.stash[stash.TARGETS][spec.display] = target
    return target


def _check_answers(url: str, request: pytest.FixtureRequest, spec: TargetSpec) -> None:
    """A URL target that does not answer HTTP is one message, not a connection error in every contract."""
    try:
        with httpx.Client(base_url=url, timeout=10.0, verify=tls_context()) as client:
            client.get("/health")
    except httpx.TransportError as exc:
        _boot_failed(
            request,
            spec,
            TargetError(
                f"{url} does not answer: {type(exc).__name__}: {exc}",
                fix="start the backend first, or check the URL and port",
            ),
        )


def _boot_failed(request: pytest.FixtureRequest, spec: TargetSpec, exc: HarnessError) -> NoReturn:
    """One target that cannot boot: one message. Alone it ends the run; in a matrix, its tests error."""
    request.config.stash[stash.BOOT_ERRORS][spec.display] = exc.message
    if len(request.config.stash[stash.SPECS]) == 1:
        fail_run(exc, request.session)
    pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def makrx_source_addresses(makrx_config: MakrxConfig) -> SourceAddresses:
    """Distinct loopback source addresses, one per client."""
    return SourceAddresses(makrx_config.seed)


@pytest.fixture
def makrx_client_factory(
    makrx_source_addresses: SourceAddresses, request: pytest.FixtureRequest
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
