"""Bundled Modbus register-map profiles (YAML files next to this module) and the loader."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from gateway.core.errors import ConfigError
from gateway.core.yaml_source import read_yaml
from gateway.protocols.modbus_profile import Profile
from gateway.protocols.profile_schema import parse_profile

PROFILE_DIR = Path(__file__).resolve().parent


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with the gateway."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def profile_path(name_or_path: str) -> Path:
    """Resolve a bundled profile name or a file path.

    Raises:
        ConfigError: neither a bundled name nor an existing file.
    """
    if name_or_path in bundled_profiles():
        return PROFILE_DIR / f"{name_or_path}.yaml"
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    raise ConfigError(
        f"profile {name_or_path!r} is neither a bundled profile "
        f"({', '.join(bundled_profiles())}) nor a file"
    )


@lru_cache(maxsize=32)
def _load(path: Path, mtime_ns: int) -> Profile:
    del mtime_ns  # part of the cache key only
    yaml = read_yaml(path, "profile")
    try:
        return parse_profile(yaml.data, source=str(path), yaml=yaml)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError, RecursionError) as e:
        # a shape the parser did not foresee: still a clear error naming the file
        raise ConfigError(f"{path}: malformed profile ({type(e).__name__}: {e})") from None


def load_profile(name_or_path: str) -> Profile:
    """Load and validate a profile by bundled name or path (cached per file version).

    Raises:
        ConfigError: unknown name, unreadable file or an invalid profile.
    """
    path = profile_path(name_or_path)
    return _load(path, path.stat().st_mtime_ns)
