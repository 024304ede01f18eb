"""Project configuration: ``[tool.anachron]`` in ``pyproject.toml``, or an ``anachron.toml``.

The nearest file walking up from the current directory wins; in one directory ``anachron.toml`` is
read before ``pyproject.toml``, and a ``pyproject.toml`` without a ``[tool.anachron]`` table is
skipped. Keys (all optional)::

    [tool.anachron]                 # in anachron.toml: the same keys at top level (or under [tool.anachron])
    target = "flows/etl.py"         # default TARGET: a Python file (relative to this file's directory)
    # module = "mypkg.flows"        # ... or an importable module (this file's directory is put on sys.path)
    database = "sqlite:///.anachron/anachron.db"   # a relative SQLite path is relative to this file's directory

``target`` and ``module`` may name one repository of several with ``file.py:repo`` / ``pkg.mod:repo``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import CliError

KEYS = ("target", "module", "database")


@dataclass(frozen=True)
class Config:
    path: Path | None = None  #: the file the settings came from
    target: str | None = None  #: absolute path of the default Python file target (maybe with ``:attr``)
    module: str | None = None  #: the default module target
    database: str | None = None  #: database URL (SQLite paths made absolute)

    @property
    def root(self) -> Path | None:
        return self.path.parent if self.path else None

    @property
    def has_target(self) -> bool:
        return bool(self.target or self.module)


def load_config(start: Path | None = None) -> Config:
    """The nearest configuration above ``start`` (default: the current directory), or an empty one."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        for name in ("anachron.toml", "pyproject.toml"):
            path = directory / name
            if not path.is_file():
                continue
            table = _table(path)
            if table is not None:
                return _parse(path, table)
    return Config()


def _table(path: Path) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{path}: cannot read it as TOML: {exc}") from None
    tool = data.get("tool", {}).get("anachron") if isinstance(data.get("tool"), dict) else None
    if path.name == "anachron.toml":
        return tool if isinstance(tool, dict) else {k: v for k, v in data.items() if k != "tool"}
    return tool if isinstance(tool, dict) else None


def _parse(path: Path, table: dict[str, Any]) -> Config:
    where = f"{path} [tool.anachron]" if path.name == "pyproject.toml" else str(path)
    for key, value in table.items():
        if key not in KEYS:
            raise CliError(f"{where}: unknown key {key!r} (known: {', '.join(KEYS)})")
        if not isinstance(value, str) or not value.strip():
            raise CliError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if "target" in table and "module" in table:
        raise CliError(f"{where}: give target (a file) or module, not both")
    target = table.get("target")
    if target is not None:
        target = resolve_file_target(target, path.parent)
    database = table.get("database")
    if database is not None:
        database = absolute_sqlite_url(database, path.parent)
    return Config(path=path, target=target, module=table.get("module"), database=database)


def resolve_file_target(text: str, base: Path) -> str:
    """``flows.py`` or ``flows.py:repo`` made absolute against ``base``."""
    file, attr = split_attr(text)
    resolved = str((base / file).resolve()) if not Path(file).is_absolute() else file
    return f"{resolved}:{attr}" if attr else resolved


def split_attr(text: str) -> tuple[str, str | None]:
    """``path.py:repo`` → (``path.py``, ``repo``); a suffix that is not an identifier is not split off."""
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return text, None


def absolute_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///relative/path.db`` → an absolute path under ``base``; other URLs unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix):]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url
