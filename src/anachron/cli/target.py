"""TARGET resolution: which Python code defines the workflows, and which repository to use.

A TARGET is a Python file (``flows.py``; ``flows.py:repo`` picks one repository) or, with ``-m``, an
importable module (``pkg.flows``, ``pkg.flows:repo``). A file is imported under its own name with its
directory appended to ``sys.path`` (so it can import its sibling modules, and worker processes import it
the same way); when that name would find another module (``random.py``), it gets a private module name.

From the module: exactly one ``CodeRepository`` → that one (``--db`` / ``ANACHRON_DATABASE_URL`` /
``[tool.anachron] database`` replace its storage); none → one built from the module's workflows with a
``LocalExecutor``; several → pick one with ``:name``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

import anachron as ac

from .common import CliError
from .config import Config, split_attr

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Target:
    kind: str  #: "file" or "module"
    value: str  #: the file path (as given) or the module name
    attr: str | None = None  #: a repository's name in the module
    from_config: bool = False

    @classmethod
    def parse(cls, text: str, kind: str = "file", from_config: bool = False) -> "Target":
        value, attr = split_attr(text)
        if not value:
            raise CliError(f"TARGET: {text!r} is empty")
        return cls(kind, value, attr, from_config)

    def argv(self) -> str:
        """How to repeat this target on a command line ("" when it comes from the configuration)."""
        if self.from_config:
            return ""
        text = self.value + (f":{self.attr}" if self.attr else "")
        return f"-m {text}" if self.kind == "module" else _quote(text)

    def __str__(self) -> str:
        return self.value + (f":{self.attr}" if self.attr else "")


@dataclass
class Loaded:
    target: Target
    module: ModuleType
    repositories: dict[str, ac.CodeRepository] = field(default_factory=dict)
    workflows: list[ac.Workflow] = field(default_factory=list)

    def repository(self) -> tuple[str, ac.CodeRepository] | None:
        if self.target.attr:
            obj = getattr(self.module, self.target.attr, None)
            if not isinstance(obj, ac.CodeRepository):
                raise CliError(f"TARGET {self.target}: {self.target.attr!r} is not an ac.CodeRepository "
                               f"in {self.target.value}")
            return self.target.attr, obj
        if len(self.repositories) > 1:
            names = ", ".join(self.repositories)
            raise CliError(f"TARGET {self.target}: it defines {len(self.repositories)} CodeRepository objects "
                           f"({names}); pick one with {self.target.value}:NAME")
        return next(iter(self.repositories.items()), None)

    def all_workflows(self) -> list[ac.Workflow]:
        chosen = self.repository()
        return chosen[1].workflows if chosen else list(self.workflows)

    def workflow(self, name: str) -> ac.Workflow:
        for wf in self.all_workflows():
            if wf.name == name:
                return wf
        known = ", ".join(sorted(w.name for w in self.all_workflows())) or "none"
        raise CliError(f"WORKFLOW: unknown workflow {name!r} in {self.target} (known: {known})")


def pick(positionals: Sequence[str] | None, names: Sequence[str], module: str | None,
         config: Config) -> tuple[Target | None, list[str]]:
    """Split ``[TARGET] NAME...`` positionals: one more than ``names`` means the first is TARGET."""
    given = list(positionals or [])
    wanted = len(names)
    if len(given) == wanted + 1:
        if module:
            raise CliError(f"give TARGET or -m MODULE, not both (got {given[0]!r} and -m {module})")
        return Target.parse(given[0]), given[1:]
    if len(given) == wanted:
        if module:
            return Target.parse(module, "module"), given
        if config.target:
            return Target.parse(config.target, "file", from_config=True), given
        if config.module:
            return Target.parse(config.module, "module", from_config=True), given
        return None, given
    if len(given) < wanted:
        missing = " ".join(names[len(given):]) if len(given) else " ".join(names)
        if given and _looks_like_file(given[0]):
            missing = " ".join(names)
        raise CliError(f"missing {missing} (usage: [TARGET] {' '.join(names)})")
    extra = " ".join(given[wanted + 1:])
    raise CliError(f"too many arguments: {extra!r} (usage: [TARGET] {' '.join(names)})")


def require(target: Target | None, names: Sequence[str], positionals: Sequence[str]) -> Target:
    if target is not None:
        return target
    if positionals and _looks_like_file(positionals[0]):
        raise CliError(f"missing {' '.join(names)} after TARGET {positionals[0]}")
    raise CliError("no TARGET: give a Python file or -m MODULE before "
                   f"{names[0] if names else 'the options'}, or set target in [tool.anachron] (pyproject.toml)")


def load(target: Target, config: Config) -> Loaded:
    """Import the target's module and collect its repositories and workflows."""
    if target.kind == "file":
        module = _load_file(target)
    else:
        module = _load_module(target, config)
    repositories: dict[str, ac.CodeRepository] = {}
    workflows: dict[int, ac.Workflow] = {}
    for name, obj in vars(module).items():
        if isinstance(obj, ac.CodeRepository) and all(obj is not r for r in repositories.values()):
            repositories[name] = obj
        elif isinstance(obj, ac.Workflow):
            workflows.setdefault(id(obj), obj)
    return Loaded(target, module, repositories, list(workflows.values()))


def database_url(db: str | None, config: Config) -> str | None:
    """The storage the user chose: ``--db``, then ``ANACHRON_DATABASE_URL``, then the config; or None."""
    if db is not None:
        if not db.strip():
            raise CliError("--db: the database URL is empty")
        return db
    return os.environ.get("ANACHRON_DATABASE_URL") or config.database


@contextlib.contextmanager
def repository(target: Target | None, db: str | None, config: Config, *,
               need_target: bool = True) -> Iterator[ac.CodeRepository]:
    """The repository a command works with; closed (leases released) when the command ends."""
    url = database_url(db, config)
    if url is not None:  # the target's code (and worker processes importing it) default to the same database
        os.environ["ANACHRON_DATABASE_URL"] = url
    repo = None
    if target is None:
        if need_target:
            raise CliError("no TARGET: give a Python file or -m MODULE, or set target in [tool.anachron]")
        repo = _open(lambda: ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(max_workers=1)), url)
    else:
        loaded = load(target, config)
        chosen = loaded.repository()
        if chosen is not None:
            _, found = chosen
            if url is None or _same_url(url, found.storage_url):
                repo = _open(lambda: found, url)
            else:  # its own storage is never opened (a repository opens storage on first use)
                repo = _open(lambda: ac.CodeRepository(found.workflows, storage=url, executor=found.executor,
                                                       run_queue=found.run_queue, lease_seconds=found.lease_seconds),
                             url)
        else:
            if not loaded.workflows:
                raise CliError(f"TARGET {target}: it defines no @ac.workflow and no ac.CodeRepository")
            repo = _open(lambda: ac.CodeRepository(loaded.workflows, storage=url, executor=ac.LocalExecutor()), url)
    try:
        yield repo
    finally:
        repo.close()


def open_storage(url: str | None):
    """Open (and so migrate) a storage URL, for ``db`` commands."""
    from ..storage import Storage

    return _open(lambda: Storage(url), url)


def mask(url: str) -> str:
    """A URL fit to print: the password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        return url


# -- helpers ------------------------------------------------------------------------------------
def _open(factory, url: str | None):
    from sqlalchemy.exc import SQLAlchemyError

    try:
        opened = factory()
        if isinstance(opened, ac.CodeRepository):
            opened.storage  # open it now, so a bad --db is reported here in one line
        return opened
    except SQLAlchemyError as exc:
        shown = mask(url) if url else "the default database"
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CliError(f"--db: cannot open {shown}: {reason}") from None


def _same_url(a: str, b: str) -> bool:
    from ..storage import normalize_url

    return normalize_url(a) == normalize_url(b)


def _looks_like_file(text: str) -> bool:
    return text.endswith((".py", *YAML_SUFFIXES)) or os.sep in text or Path(split_attr(text)[0]).is_file()


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _load_file(target: Target) -> ModuleType:
    path = Path(target.value).expanduser()
    if path.suffix in YAML_SUFFIXES:
        raise CliError(f"TARGET {target.value}: YAML flows are not supported yet; give a Python file or -m MODULE")
    if not path.exists():
        raise CliError(f"TARGET {target.value}: no such file")
    if path.is_dir():
        raise CliError(f"TARGET {target.value}: is a directory; give a Python file or -m MODULE")
    path = path.resolve()
    directory = str(path.parent)
    if directory not in sys.path:  # appended: a flows file named like a module (random.py) must not shadow it
        sys.path.append(directory)
    name = _module_name(path)
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"TARGET {target.value}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, CliError):
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's module failed: report where, no traceback
        sys.modules.pop(name, None)
        raise CliError(f"TARGET {target.value}: cannot load it: {_where(exc, str(path))}") from None
    return module


def _module_name(path: Path) -> str:
    """The file's own name when importing that name finds this very file, else a private name."""
    stem = path.stem
    if stem.isidentifier() and stem not in sys.stdlib_module_names:
        module = sys.modules.get(stem)
        if module is not None:
            if getattr(module, "__file__", None) == str(path):
                return stem
        else:
            try:
                spec = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                spec = None
            if spec is not None and spec.origin and Path(spec.origin).resolve() == path:
                return stem
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"_anachron_target_{safe}_{digest}"


def _load_module(target: Target, config: Config) -> ModuleType:
    for directory in (os.getcwd(), str(config.root) if config.root else None):
        if directory and directory not in sys.path:
            sys.path.insert(0, directory)
    name = target.value
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(f"-m {name}: no module named {exc.name!r}") from None
        raise CliError(f"-m {name}: cannot load it: {_where(exc, None)}") from None
    except (KeyboardInterrupt, CliError):
        raise
    except BaseException as exc:  # noqa: BLE001
        raise CliError(f"-m {name}: cannot load it: {_where(exc, None)}") from None


def _where(exc: BaseException, path: str | None) -> str:
    """``NameError: name 'x' is not defined (flows.py:12)`` — the deepest frame in the user's file."""
    what = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    package = str(Path(ac.__file__).parent)
    mine = [f for f in frames if (path and f.filename == path)
            or not (f.filename.startswith(package) or f.filename.startswith("<frozen"))]
    if mine:
        return f"{what} ({mine[-1].filename}:{mine[-1].lineno})"
    return what
