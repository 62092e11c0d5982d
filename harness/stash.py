"""What the plugin's hooks and fixtures share through ``config.stash``: one key per fact, set once."""

from __future__ import annotations

import pytest

from .backend.resolve import TargetSpec
from .backend.running import RunningTarget
from .backend.shared_forks import SharedForkServers
from .baseline import Baseline
from .config import MakrxConfig
from .report import Scorecard

__all__ = [
    "BASELINE",
    "BOOT_ERRORS",
    "CONFIG",
    "FORK_SERVERS",
    "ISSUER_KEYS",
    "LEFT_OUT",
    "PROVIDER",
    "SCORECARD",
    "SPECS",
    "TARGETS",
    "UNBOOTED_FIRST",
    "spec_of",
]

CONFIG = pytest.StashKey[MakrxConfig]()
SPECS = pytest.StashKey[list[TargetSpec]]()
TARGETS = pytest.StashKey[dict[str, RunningTarget]]()  # by target label, once booted
BOOT_ERRORS = pytest.StashKey[dict[str, str]]()  # by target label
LEFT_OUT = pytest.StashKey[list[str]]()  # glob matches that are not backends
UNBOOTED_FIRST = pytest.StashKey[dict[str, str]]()  # target label -> the test that shows its boot error
SCORECARD = pytest.StashKey[Scorecard]()  # the controller's (or a plain run's)
FORK_SERVERS = pytest.StashKey[SharedForkServers]()  # the xdist controller's, one per target
ISSUER_KEYS = pytest.StashKey[dict[str, str]]()  # the xdist controller's, PEMs by key spec (issuer/key.py)
BASELINE = pytest.StashKey[Baseline | None]()
PROVIDER = pytest.StashKey[tuple[str, str]]()  # (services provider, why), once the services started


def spec_of(item: pytest.Item) -> TargetSpec | None:
    """The target an item checks: its matrix parameter, else the run's one target."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "makrx_target_spec" in callspec.params:
        spec: TargetSpec = callspec.params["makrx_target_spec"]
        return spec
    specs = item.config.stash.get(SPECS, [])
    return specs[0] if specs else None
