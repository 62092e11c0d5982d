"""Turn `--makrx-target` into a TargetSpec: which directory, which package, which app, which settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .settings import TargetSettings, load_settings

__all__ = ["REFERENCE_APP_DIR", "TargetSpec", "resolve_target"]

REFERENCE_APP_DIR = Path(__file__).resolve().parents[2] / "reference_app"
_FIX = "pass --makrx-target=<backend directory>, 'reference', or an http(s):// URL of a running backend"


@dataclass(frozen=True)
class TargetSpec:
    """A backend to check. Path targets are imported as a package from ``import_root``."""

    raw: str
    name: str
    settings: TargetSettings
    path: Path | None = None
    url: str | None = None
    import_root: Path | None = None
    app: str | None = None
    label: str = ""

    @property
    def display(self) -> str:
        """How reports name the target: its directory name, longer only when two targets share it."""
        return self.label or self.name

    @property
    def is_url(self) -> bool:
        return self.url is not None

    @property
    def cwd(self) -> Path | None:
        """Where the backend runs: the settings' `cwd` (relative to the backend), else the import root."""
        if self.settings.cwd and self.path is not None:
            return (self.path / self.settings.cwd).resolve()
        return self.import_root

    @property
    def client_id(self) -> str:
        return self.settings.client_id or f"{self.name}-api"


def _package_chain(directory: Path) -> tuple[Path, str]:
    """Walk up `__init__.py` files: `backends/makrcave` → (repo root, "backends.makrcave")."""
    parts: list[str] = []
    current = directory
    while (current / "__init__.py").is_file():
        parts.insert(0, current.name)
        current = current.parent
    return current, ".".join(parts)


def resolve_target(raw: str, config_file: Path | None = None, base: Path | None = None) -> TargetSpec:
    """Resolve without starting anything; every problem is one ConfigError with the fix."""
    if raw.startswith(("http://", "https://")):
        settings = load_settings(None, config_file)
        return TargetSpec(raw=raw, name="remote", url=raw.rstrip("/"), settings=settings)
    directory = REFERENCE_APP_DIR if raw in ("reference", "reference_app") else Path(raw).expanduser()
    if not directory.is_absolute():
        directory = (base or Path.cwd()) / directory
    directory = directory.resolve()
    if not directory.exists():
        raise ConfigError(f"target path {directory} does not exist", fix=_FIX)
    if not directory.is_dir():
        raise ConfigError(f"target {directory} is a file, not a backend directory", fix=_FIX)
    settings = load_settings(directory, config_file)
    import_root, package = _package_chain(directory)
    module_attr = settings.app or "main:app"
    module, _, attr = module_attr.partition(":")
    if not attr:
        raise ConfigError(f"app {module_attr!r} has no ':attribute'", fix='set app = "main:app" (module:attribute)')
    if settings.app is None and settings.command is None and not (directory / "main.py").is_file():
        raise ConfigError(
            f"no main.py in {directory}, so there is no app to start",
            fix='point --makrx-target at the backend\'s directory, or set app = "module:attr" in [tool.makrx-contract]',
        )
    # `main:app` is inside the package; `backends.makrcave.main:app` (how teams write it) is already whole.
    qualified = f"{package}.{module}" if package and not module.startswith(f"{package}.") else module
    return TargetSpec(
        raw=raw,
        name=directory.name,
        path=directory,
        import_root=import_root,
        app=f"{qualified}:{attr}",
        settings=settings,
    )
