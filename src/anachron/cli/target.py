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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import anachron as ac

from ..loading import import_file, workflows_in
from .common import CliError
from .config import Config, split_attr

if TYPE_CHECKING:
    from ..storage import Storage

T = TypeVar("T")

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Target:
    kind: str  #: "file" or "module"
    value: str  #: the file path (as given) or the module name
    attr: str | None = None  #: a repository's name in the module
    from_config: bool = False

    @classmethod
    def parse(cls, text: str, kind: str = "file", from_config: bool = False) -> Target:
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


def pick_workflows(positionals: Sequence[str] | None, module: str | None,
                   config: Config) -> tuple[Target | None, list[str]]:
    """Split ``[TARGET] WORKFLOW [WORKFLOW...]``: the first positional is TARGET when it looks like a file (or
    there is no other target: no ``-m``, none configured), else every positional names a workflow."""
    given = list(positionals or [])
    if len(given) <= 1:
        return pick(given, ["WORKFLOW"], module, config)
    if module:
        if _looks_like_file(given[0]):
            raise CliError(f"give TARGET or -m MODULE, not both (got {given[0]!r} and -m {module})")
        return Target.parse(module, "module"), given
    if _looks_like_file(given[0]) or not (config.target or config.module):
        return Target.parse(given[0]), given[1:]
    return pick([], [], None, config)[0], given


def workflow_names(names: Sequence[str], server: str) -> list[str]:
    """More workflows after the first, for a server (which has the code): none may look like a TARGET."""
    for name in names:
        if _looks_like_file(name):
            raise CliError(f"TARGET {name}: not used with {server}: the server has the workflows; leave it out")
    return list(names)


def pick_many(positionals: Sequence[str] | None, module: str | None, config: Config) -> list[Target]:
    """``TARGET...`` (any number, and/or ``-m MODULE``), else the configured target."""
    chosen = [Target.parse(text) for text in positionals or []]
    if module:
        chosen.append(Target.parse(module, "module"))
    if not chosen and config.target:
        chosen.append(Target.parse(config.target, "file", from_config=True))
    if not chosen and config.module:
        chosen.append(Target.parse(config.module, "module", from_config=True))
    if not chosen:
        raise CliError("no TARGET: give Python files, YAML flows or folders of them (or -m MODULE), or set target "
                       "in [tool.anachron] (pyproject.toml)")
    return chosen


@contextlib.contextmanager
def repository_of(chosen: Sequence[Target], db: str | None, config: Config) -> Iterator[ac.CodeRepository]:
    """One repository for several targets: their workflows together (names must not clash), on the chosen
    database, with a ``LocalExecutor``. One target: exactly ``repository``."""
    if len(chosen) == 1:
        with repository(chosen[0], db, config) as repo:
            yield repo
        return
    url = database(db, config).url
    if url is not None:
        os.environ["ANACHRON_DATABASE_URL"] = url
    workflows: dict[str, tuple[ac.Workflow, Target]] = {}
    for target in chosen:
        for wf in load(target, config).all_workflows():
            seen = workflows.get(wf.name)
            if seen is not None and seen[0] is not wf:
                raise CliError(f"TARGET {target}: workflow {wf.name!r} is also defined by {seen[1]}")
            workflows[wf.name] = (wf, target)
    if not workflows:
        raise CliError("TARGET: none of the targets defines a workflow")
    repo = _open(lambda: ac.CodeRepository([w for w, _ in workflows.values()], storage=url,
                                           executor=ac.LocalExecutor()), database(db, config))
    try:
        yield repo
    finally:
        repo.close()


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
        path = Path(target.value).expanduser()
        if path.suffix in YAML_SUFFIXES or path.is_dir():
            return _load_flows(target, path)
        module = _load_file(target)
    else:
        module = _load_module(target, config)
    repositories: dict[str, ac.CodeRepository] = {}
    workflows: dict[int, ac.Workflow] = {}
    for name, obj in vars(module).items():
        if isinstance(obj, ac.CodeRepository):
            if all(obj is not r for r in repositories.values()):
                repositories[name] = obj
        elif not isinstance(obj, type):  # workflows, and lists / dicts of them (as worker processes find them)
            for wf in workflows_in(obj):
                workflows.setdefault(id(wf), wf)
    return Loaded(target, module, repositories, list(workflows.values()))


@dataclass(frozen=True)
class Database:
    """The database the user chose, and where the choice came from (for messages and hints)."""

    url: str | None  #: ``None``: the target's own storage (or, without a target, the default file)
    source: str | None = None  #: ``--db``, ``ANACHRON_DATABASE_URL`` or ``database in FILE``
    option: str | None = None  #: ``--db`` exactly as given


def database(db: str | None, config: Config) -> Database:
    """``--db``, then ``ANACHRON_DATABASE_URL``, then the config — validated here, before any target is
    loaded, so a bad URL is blamed on where it came from (not on the target, whose module would build a
    repository with it)."""
    if db is not None:
        if not db.strip():
            raise CliError("--db: the database URL is empty")
        chosen = Database(db, "--db", db)
    elif os.environ.get("ANACHRON_DATABASE_URL"):
        chosen = Database(os.environ["ANACHRON_DATABASE_URL"], "ANACHRON_DATABASE_URL")
    elif config.database:
        chosen = Database(config.database, f"database in {config.path}")
    else:
        return Database(None)
    _check_url(chosen)
    return chosen


def database_url(db: str | None, config: Config) -> str | None:
    """The storage the user chose: ``--db``, then ``ANACHRON_DATABASE_URL``, then the config; or None."""
    return database(db, config).url


def _check_url(chosen: Database) -> None:
    from ..storage import normalize_url

    given = chosen.url
    if given is None:  # the target's own storage: checked when it is opened
        return
    try:
        url = normalize_url(given)
    except ValueError as exc:
        raise CliError(f"{chosen.source}: {str(exc).removeprefix('storage: ')}") from None
    try:
        from sqlalchemy.engine import make_url

        make_url(url)
    except Exception as exc:  # noqa: BLE001 - ArgumentError, ValueError (a bad port): a malformed URL
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"{chosen.source}: malformed database URL {mask(given)!r}: {reason}") from None


def default_database_exists() -> bool:
    from ..storage import DEFAULT_URL

    return Path(DEFAULT_URL.split(":///", 1)[1]).is_file()


NO_DATABASE = ("no database found: {path} does not exist here; name one with TARGET (a file whose repository "
               "names the storage), --db URL, ANACHRON_DATABASE_URL, or database in [tool.anachron]")


@contextlib.contextmanager
def repository(target: Target | None, db: str | None, config: Config, *,
               need_target: bool = True) -> Iterator[ac.CodeRepository]:
    """The repository a command works with; closed (leases released) when the command ends."""
    chosen = database(db, config)
    url = chosen.url
    if url is not None:  # the target's code (and worker processes importing it) default to the same database
        os.environ["ANACHRON_DATABASE_URL"] = url
    repo: ac.CodeRepository
    if target is None:
        if need_target:
            raise CliError("no TARGET: give a Python file or -m MODULE, or set target in [tool.anachron]")
        if url is None and not default_database_exists():  # never create a database nobody named
            from ..storage import DEFAULT_URL

            raise CliError(NO_DATABASE.format(path=DEFAULT_URL.split(":///", 1)[1]))
        repo = _open(lambda: ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(max_workers=1)),
                     chosen)
    else:
        loaded = load(target, config)
        chosen_repo = loaded.repository()
        if chosen_repo is not None:
            _, found = chosen_repo
            if url is None or _same_url(url, found.storage_url):
                repo = _open(lambda: found, chosen, found.storage_url)
            else:  # its own storage is never opened (a repository opens storage on first use)
                repo = _open(lambda: ac.CodeRepository(found.workflows, storage=url, executor=found.executor,
                                                       run_queue=found.run_queue, lease_seconds=found.lease_seconds),
                             chosen)
        else:
            if not loaded.workflows:
                raise CliError(f"TARGET {target}: it defines no @ac.workflow and no ac.CodeRepository")
            repo = _open(lambda: ac.CodeRepository(loaded.workflows, storage=url, executor=ac.LocalExecutor()),
                         chosen)
    try:
        yield repo
    finally:
        repo.close()


def open_storage(url: str | None, source: str | None = None) -> Storage:
    """Open (and so migrate) a storage URL, for ``db`` commands."""
    from ..storage import Storage

    return _open(lambda: Storage(url), Database(url, source))


def mask(url: str) -> str:
    """A URL fit to print: the password hidden."""
    from ..storage.urls import mask_url

    return mask_url(url)


# -- helpers ------------------------------------------------------------------------------------
def _open(factory: Callable[[], T], chosen: Database, own_url: str | None = None) -> T:
    """Build (and open) the repository or storage; a database that cannot be opened is bad input (exit 2),
    blamed on where its URL came from."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..storage import StorageError, describe_error

    try:
        opened = factory()
        if isinstance(opened, ac.CodeRepository):
            _ = opened.storage  # open it now, so a bad --db is reported here in one line
        return opened
    except (SQLAlchemyError, StorageError) as exc:
        url = chosen.url or own_url
        shown = mask(url) if url else "the default database"
        reason = describe_error(exc) if isinstance(exc, SQLAlchemyError) else str(exc).splitlines()[0]
        source = chosen.source or ("TARGET" if own_url else "database")
        raise CliError(f"{source}: cannot open {shown}: {reason}") from None


def _same_url(a: str, b: str) -> bool:
    from ..storage import normalize_url

    return normalize_url(a) == normalize_url(b)


def _looks_like_file(text: str) -> bool:
    return text.endswith((".py", *YAML_SUFFIXES)) or os.sep in text or Path(split_attr(text)[0]).is_file()


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _load_flows(target: Target, path: Path) -> Loaded:
    """A YAML flow file, or a folder of them: their workflows (a broken file registers nothing)."""
    from ..flows import FlowError, load_flows

    if not path.exists():
        raise CliError(f"TARGET {target.value}: no such file or folder")
    if target.attr:
        raise CliError(f"TARGET {target}: a YAML flow has no repository to pick; give {target.value}")
    try:
        workflows = load_flows(path)
    except FlowError as exc:
        raise CliError(str(exc), every_line=True) from None
    except OSError as exc:
        raise CliError(f"TARGET {target.value}: cannot read it: {exc.strerror or exc}") from None
    if not workflows:
        raise CliError(f"TARGET {target.value}: no YAML flows (*.yaml, *.yml) in this folder")
    module = ModuleType(f"anachron_flows_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}")
    for wf in workflows:
        setattr(module, wf.name, wf)
    return Loaded(target, module, {}, workflows)


def _load_file(target: Target) -> ModuleType:
    path = Path(target.value).expanduser()
    if not path.exists():
        raise CliError(f"TARGET {target.value}: no such file")
    path = path.resolve()
    directory = str(path.parent)
    if directory not in sys.path:  # appended: a flows file named like a module (random.py) must not shadow it
        sys.path.append(directory)
    try:
        module = import_file(_module_name(path), str(path))
    except (KeyboardInterrupt, CliError):
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's module failed: report where, no traceback
        raise CliError(f"TARGET {target.value}: cannot load it: {_where(exc, str(path))}") from None
    if module is None:
        raise CliError(f"TARGET {target.value}: cannot be imported as Python")
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
