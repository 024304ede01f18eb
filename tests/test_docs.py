"""The documentation: every public name has its Python reference entry, links stay inside the repository (the
site is built from docs/, so a link to ../src/... is dead there), and the YAML reference's example loads.
``./dev docs`` (``mkdocs build --strict``, run by ``./dev test``) checks the rest: every link and anchor."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import anachron as ac
from anachron.flows import FlowError, load_flow

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # not in code blocks
    return [a or b for a, b in LINK.findall(text)]


def test_every_public_name_is_in_the_python_reference():
    listed = set(re.findall(r"^::: anachron(?:\.\w+)*\.(\w+)$", (DOCS / "reference" / "python.md").read_text(), re.M))
    assert sorted(set(ac.__all__) - listed) == [], "add them to docs/reference/python.md"
    assert sorted(listed - set(ac.__all__)) == []


def test_docs_links_stay_in_the_docs_folder():
    for page in DOCS.rglob("*.md"):
        for target in links(page):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(DOCS), f"{page.relative_to(ROOT)}: {target} leaves docs/"
            assert resolved.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"


def test_readme_links_point_at_files_of_the_repository():
    found = links(ROOT / "README.md")
    assert any(t.startswith("docs/") for t in found)
    for target in found:
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (ROOT / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"README.md: {target}"


def test_the_yaml_reference_example_loads(tmp_path):
    text = (DOCS / "reference" / "yaml-flows.md").read_text()
    example = re.search(r"```yaml\n(id: daily_export .*?)```", text, re.S).group(1)
    (tmp_path / "export.yaml").write_text(example)
    with pytest.raises(FlowError, match=r"tasks\[1\]\.callable: no module named 'jobs'"):
        load_flow(tmp_path / "export.yaml")  # its module is found when the flow loads: none yet
    (tmp_path / "jobs.py").write_text("def load(day):\n    return day\n")
    wf = load_flow(tmp_path / "export.yaml")
    assert wf.name == "daily_export" and wf.tags["team"] == "data"
    assert [s.id for s in wf.schedules] == ["nightly"] and wf.partitions is not None


def test_the_readme_example_runs_as_printed(tmp_path):
    code = re.search(r"## In twenty lines\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 22
    (tmp_path / "flows.py").write_text(code)
    proc = subprocess.run([sys.executable, "flows.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "completed 91 0\n"


def test_the_readmes_graph_builds_on_its_example_and_heals_as_told(tmp_path):
    """The README's graph snippet, added to its twenty lines (it reuses ``days``), is a valid graph; the heal
    command it prints runs exactly the missing hours, their days and their weeks (here: a dry run of it)."""
    text = (ROOT / "README.md").read_text()
    example = re.search(r"## In twenty lines\n\n```python\n(.*?)```", text, re.S).group(1)
    graph = re.search(r"## A graph of workflows\n.*?```python\n(.*?)```", text, re.S).group(1)
    command = re.search(r"```bash\n(anachron backfill create flows.py raw_events .*?)```", text, re.S).group(1)
    head = example.split('if __name__ == "__main__":')[0]  # the definitions, without the backfill it runs
    head = head.replace("workflows=[daily_sales]", "workflows=[daily_sales, raw_events, daily_summary, weekly_report]")
    before, repo = head.split("repo = ", 1)
    (tmp_path / "flows.py").write_text(before + graph + "\nrepo = " + repo)
    args = command.replace("\\\n", " ").split()[1:] + ["--dry-run", "--output", "json"]
    env = {"PATH": "/usr/bin:/bin", "ANACHRON_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    planned = json.loads(proc.stdout)["workflows"]  # nothing ran yet: every hour of March is missing
    assert planned["raw_events"]["num_partitions"] == 743  # March 31st springs forward in Paris
    assert planned["daily_summary"]["num_partitions"] == 31 and planned["weekly_report"]["num_partitions"] == 5
