"""The distribution installs the repository's folders under one namespace, and every package on disk."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_package_on_disk_is_installed_under_the_namespace() -> None:
    """pyproject lists packages by hand (a package-dir mapping cannot be found by setuptools' find):
    a new sub-package left out would be missing from regular installs only."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        "makrx_contracts." + ".".join(init.parent.relative_to(REPO).parts)
        for top in ("harness", "contracts", "reference_app")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == on_disk
    assert setuptools["package-dir"] == {"makrx_contracts": "."}


def test_no_generic_top_level_name_is_claimed() -> None:
    """The plugin's entry point and every package live under `makrx_contracts`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    entry = project["project"]["entry-points"]["pytest11"]
    assert all(value.startswith("makrx_contracts.") for value in entry.values())
    assert all(name.startswith("makrx_contracts.") for name in project["tool"]["setuptools"]["packages"])
