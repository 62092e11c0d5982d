"""What the suite found out about a backend instead of asking (the AUTH probe, role rules from OpenAPI
scopes, the rate-limit path), reported at the end of every run and in the scorecard, and printed by
`--makrx-discover` as a `[tool.makrx-contract]` block to paste.

Findings are made in whichever process runs the fixture (an xdist worker, too): they travel to the
controller as user properties of the next test report of that process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import tomli_w

from .backend.settings import TargetSettings

__all__ = ["DISCOVER_CONTRACTS", "Finding", "attach", "read", "record", "render_toml", "to_discover"]

# The contracts whose fixtures discover each setting: what `--makrx-discover` runs.
DISCOVER_CONTRACTS = frozenset({"AUTH-VALID-TOKEN", "AUTH-ROLE-FORBIDDEN", "RATE-LIMIT"})

_PROPERTY = "makrx_discovered"
_pending = pytest.StashKey[list["Finding"]]()


@dataclass(frozen=True)
class Finding:
    """One setting as discovered: ``value`` a string, or for ``roles`` one `[[roles]]` table as a JSON
    object (path, method, roles)."""

    target: str
    key: str
    value: str | dict[str, Any]
    note: str = ""


def to_discover(settings: TargetSettings) -> list[str]:
    """The settings this run finds by asking the backend, because the target's settings leave them out:
    what the run header announces (the findings themselves end the run)."""
    keys = [key for key in ("auth_probe", "rate_limit_path") if not getattr(settings, key)]
    return [*keys, "roles from OpenAPI scopes" + (" beside [[roles]]" if settings.roles else "")]


def record(config: pytest.Config, finding: Finding) -> None:
    """Keep ``finding`` until the next report of this process carries it to the controller."""
    config.stash.setdefault(_pending, []).append(finding)


def attach(config: pytest.Config, report: pytest.TestReport) -> None:
    """Move the pending findings onto ``report`` (called for every report of a contract)."""
    pending = config.stash.get(_pending, [])
    while pending:
        finding = pending.pop(0)
        report.user_properties.append((_PROPERTY, json.dumps(finding.__dict__)))


def read(report: pytest.TestReport) -> list[Finding]:
    return [Finding(**json.loads(str(value))) for name, value in report.user_properties if name == _PROPERTY]


def render_toml(findings: list[Finding]) -> list[str]:
    """The findings of each target as a ready-to-paste `[tool.makrx-contract]` block (values written by
    tomli-w, so any path is quoted right), each with its note."""
    lines: list[str] = []
    for target in dict.fromkeys(finding.target for finding in findings):
        own = [finding for finding in findings if finding.target == target]
        lines += [f"# {target}: discovered (settings win over discovery; paste to pin)", "[tool.makrx-contract]"]
        for finding in sorted(own, key=lambda found: isinstance(found.value, dict)):  # tables after keys
            lines += [f"# {finding.note}"] if finding.note else []
            if isinstance(finding.value, dict):
                table = {"tool": {"makrx-contract": {finding.key: [finding.value]}}}
                lines += tomli_w.dumps(table).strip().splitlines()
            else:
                lines.append(tomli_w.dumps({finding.key: finding.value}).strip())
    return lines
