"""The gate where teams run it: from the root of a monorepo whose own pytest set-up would break it, with
an editable install and with a regular one (SPEC §2; issue 12, "Run anywhere")."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from makrx_contracts.harness.backend.resolve import REFERENCE_APP_DIR

from .scratch import enterable_dir

REPO = Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

# Everything a monorepo may carry that a contract run must not trip over.
_MONOREPO_FILES = {
    # Its own test set-up: testpaths, addopts naming a plugin the suite's venv lacks and a marker
    # selection that matches no contract, warnings as errors, an ini key of a missing plugin.
    "pytest.ini": "[pytest]\ntestpaths = backends/shop/tests\n"
    "addopts = -q --cov=backends --cov-report=xml -m unit -p no:cacheprovider\n"
    "filterwarnings = error\nasyncio_mode = auto\n",
    "conftest.py": "import jose  # the backends' test dependency, not in the suite's venv\n",
    # Generic top-level packages of its own.
    "harness/__init__.py": "raise ImportError('the monorepo own harness package was imported')\n",
    "contracts/__init__.py": "raise ImportError('the monorepo own contracts package was imported')\n",
    "backends/__init__.py": "",
    "backends/shop/tests/__init__.py": "",
    "backends/shop/tests/conftest.py": "import jose\n",
    "backends/shop/tests/test_shop.py": "def test_unit():\n    assert False, 'the monorepo tests ran'\n",
}


@pytest.fixture(scope="module")
def monorepo() -> Iterator[Path]:
    """A throwaway monorepo with a copy of the reference app as `backends/shop`."""
    with enterable_dir("makrx-monorepo-") as root:
        shutil.copytree(REFERENCE_APP_DIR, root / "backends" / "shop", ignore=_IGNORE)
        for name, text in _MONOREPO_FILES.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        shop = root / "backends" / "shop"
        # As real backends write them: a script_location relative to the backend directory, and the app by
        # its full import name.
        ini = shop / "alembic.ini"
        ini.write_text(ini.read_text().replace("script_location = %(here)s/migrations", "script_location = migrations"))
        settings = shop / "makrx-contract.toml"
        settings.write_text('app = "backends.shop.main:app"\n' + settings.read_text())
        yield root


def _gate(python: Path, monorepo: Path) -> subprocess.CompletedProcess[str]:
    """README's command from the monorepo's root (as `python -m pytest`: the root is on sys.path too)."""
    return subprocess.run(
        [
            str(python),
            "-m",
            "pytest",
            "--makrx-target=backends/shop",
            "-n",
            "2",
            "--makrx-services=embedded",
            "-p",
            "no:randomly",
            "-rfEs",
        ],
        cwd=monorepo,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_all_passed(done: subprocess.CompletedProcess[str]) -> None:
    tail = done.stdout[-5000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, tail
    assert re.search(r"\b\d{2,} passed\b", summary), tail
    assert not re.search(r"failed|error|skipped|warning", summary), tail
    assert "backends/shop" in done.stdout, tail


def test_gate_from_a_monorepo_root_with_an_editable_install(monorepo: Path) -> None:
    """The project's own venv has the editable install (README): every contract passes on the copy."""
    _assert_all_passed(_gate(Path(sys.executable), monorepo))


def test_gate_from_a_monorepo_root_with_a_regular_install(monorepo: Path) -> None:
    """`pip install` of the distribution (no editable finder, no checkout on sys.path) into a second venv:
    every contract passes on the copy, run from the installed files. The second venv borrows the first
    one's third-party packages (a .pth line) instead of downloading them again."""
    with enterable_dir("makrx-venv-") as place:
        venv = place / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        python = venv / "bin" / "python"
        site = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        source = place / "source"  # pip builds in the tree it is given: not in the checkout
        for name in ("harness", "contracts", "reference_app"):
            shutil.copytree(REPO / name, source / name, ignore=_IGNORE)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, source / name)
        built = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        where = subprocess.run(
            [str(python), "-c", "import makrx_contracts.harness.plugin as p; print(p.__file__)"],
            cwd=monorepo,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert where.startswith(str(site)), where
        done = _gate(python, monorepo)
        _assert_all_passed(done)
