"""The bundled contract suite as pytest collects it: its modules are imported by their installed names
(`makrx_contracts.contracts.test_cors`), never by file path, so a run names no top-level `contracts`
package and works the same from an editable checkout, a regular install or any working directory."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .. import contracts

__all__ = ["CONTRACTS_DIR", "CONTRACTS_PACKAGE", "FIXTURES_PLUGIN", "ContractModule", "ContractSuite"]

CONTRACTS_PACKAGE = contracts.__name__
CONTRACTS_DIR = Path(contracts.__file__).resolve().parent
FIXTURES_PLUGIN = f"{CONTRACTS_PACKAGE}.fixtures"


class ContractModule(pytest.Module):
    """A contract module, imported as part of its package (its relative imports work, and the path
    import's sys.path insertion never happens)."""

    def _getobj(self) -> ModuleType:
        module = importlib.import_module(f"{CONTRACTS_PACKAGE}.{self.path.stem}")
        self.config.pluginmanager.consider_module(module)
        return module


class ContractSuite(pytest.Directory):
    """The contracts directory: every `test_*.py` in it, whatever `python_files` the run configures."""

    def collect(self) -> Iterator[pytest.Collector]:
        for path in sorted(self.path.glob("test_*.py")):
            if not self.config.hook.pytest_ignore_collect(collection_path=path, config=self.config):
                yield ContractModule.from_parent(self, path=path)
