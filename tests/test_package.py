"""The package surface: public names, and a light import."""

import subprocess
import sys

import anachron as ac


def test_public_names_are_exported_flat():
    for name in ac.__all__:
        assert hasattr(ac, name), name


def test_import_does_not_load_the_database_or_web_stack():
    heavy = "('sqlalchemy', 'alembic', 'fastapi', 'psycopg', 'dask', 'distributed', 'pydantic', 'pyspark', 'py4j')"
    code = f"import sys, anachron; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _imports(path, module, modules):
    """The anachron modules ``module`` imports (anywhere in the file but ``if TYPE_CHECKING:`` blocks)."""
    import ast

    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("anachron"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([base] if base else []))
                if base.startswith("anachron"):
                    submodules = {f"{base}.{a.name}" for a in child.names} & set(modules)
                    found.update(submodules)
                    if child.module or len(submodules) < len(child.names):  # names from base itself
                        found.add(base)
            visit(child)

    visit(tree)
    return found


def test_the_package_has_no_import_circles():
    """Every import, in functions too, goes one way: no module needs one that needs it back."""
    from pathlib import Path

    root = Path(ac.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    graph = {name: {m for m in _imports(path, name, modules) if m in modules and m != name}
             for name, path in modules.items()}
    # a package's __init__ that re-exports its modules is the package's public face, not a dependency loop:
    # only the top-level anachron/__init__ (imported by nothing inside the package) is exempt
    graph.pop("anachron")
    for deps in graph.values():
        deps.discard("anachron")
    state, stack, cycles = {}, [], []

    def walk(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)
