"""Tests for anachron.check: static detection of wall-clock calls in tasks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from anachron.check import Finding, check_paths, check_source


def check(src: str, path: str = "<string>") -> list[Finding]:
    return check_source(textwrap.dedent(src), path)


def calls(src: str) -> list[str]:
    return [f.call for f in check(src)]


# --------------------------------------------------------------------------
# Call kinds
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "expr", "call", "fix"),
    [
        ("import time", "time.time()", "time.time", "anachron.time()"),
        ("import time", "time.time_ns()", "time.time_ns", "anachron.time()"),
        ("import datetime", "datetime.datetime.now()", "datetime.datetime.now", "anachron.now()"),
        ("import datetime", "datetime.datetime.utcnow()", "datetime.datetime.utcnow", "anachron.now()"),
        ("import datetime", "datetime.date.today()", "datetime.date.today", "anachron.now().date()"),
    ],
)
def test_each_call_kind(imports: str, expr: str, call: str, fix: str) -> None:
    src = f"{imports}\nfrom anachron import workflow\n\n@workflow\ndef etl():\n    return {expr}\n"
    [finding] = check_source(src, "flows.py")
    assert finding.call == call
    assert finding.function == "etl"
    assert (finding.path, finding.line, finding.col) == ("flows.py", 6, 12)
    assert finding.message == (
        f"{call}() reads the wall clock inside workflow 'etl'; use {fix} (logical time) instead"
    )
    assert finding.format() == f"flows.py:6: {finding.message}"


def test_message_names_task_kind() -> None:
    [finding] = check(
        """
        import time
        import anachron

        @anachron.task
        def load():
            time.time()
        """
    )
    assert finding.message == (
        "time.time() reads the wall clock inside task 'load'; use anachron.time() (logical time) instead"
    )


# --------------------------------------------------------------------------
# Import forms and aliases
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imports", "expr", "call"),
    [
        ("import time", "time.time()", "time.time"),
        ("import time as t", "t.time()", "time.time"),
        ("import time as t", "t.time_ns()", "time.time_ns"),
        ("from time import time", "time()", "time.time"),
        ("from time import time as now_s", "now_s()", "time.time"),
        ("from time import time_ns", "time_ns()", "time.time_ns"),
        ("import datetime", "datetime.datetime.now()", "datetime.datetime.now"),
        ("import datetime", "datetime.date.today()", "datetime.date.today"),
        ("import datetime as dt", "dt.datetime.now()", "datetime.datetime.now"),
        ("import datetime as dt", "dt.date.today()", "datetime.date.today"),
        ("from datetime import datetime, date", "datetime.now()", "datetime.datetime.now"),
        ("from datetime import datetime, date", "datetime.utcnow()", "datetime.datetime.utcnow"),
        ("from datetime import datetime, date", "date.today()", "datetime.date.today"),
        ("from datetime import datetime as DT", "DT.utcnow()", "datetime.datetime.utcnow"),
        ("from datetime import date as D", "D.today()", "datetime.date.today"),
        ("from time import *", "time()", "time.time"),
        ("from datetime import *", "datetime.now()", "datetime.datetime.now"),
    ],
)
def test_import_forms_module_level(imports: str, expr: str, call: str) -> None:
    src = f"{imports}\nfrom anachron import task\n\n@task\ndef t1():\n    x = {expr}\n"
    assert [f.call for f in check_source(src)] == [call]


@pytest.mark.parametrize(
    ("imports", "expr", "call"),
    [
        ("import time", "time.time()", "time.time"),
        ("import time as t", "t.time()", "time.time"),
        ("from time import time as now_s", "now_s()", "time.time"),
        ("import datetime as dt", "dt.datetime.now()", "datetime.datetime.now"),
        ("from datetime import datetime as DT", "DT.utcnow()", "datetime.datetime.utcnow"),
        ("from datetime import date", "date.today()", "datetime.date.today"),
    ],
)
def test_import_forms_inside_function(imports: str, expr: str, call: str) -> None:
    src = f"from anachron import task\n\n@task\ndef t1():\n    {imports}\n    return {expr}\n"
    assert [f.call for f in check_source(src)] == [call]


def test_function_level_import_does_not_leak_to_other_functions() -> None:
    assert calls(
        """
        from anachron import task

        def helper():
            import time as clock

        @task
        def t1():
            return clock.time()
        """
    ) == []


def test_function_level_import_visible_in_nested_function() -> None:
    assert calls(
        """
        from anachron import task

        @task
        def t1():
            from datetime import datetime as DT
            def inner():
                return DT.now()
            return inner()
        """
    ) == ["datetime.datetime.now"]


def test_import_after_function_definition_still_resolves() -> None:
    # The task body runs after the module has finished importing.
    assert calls(
        """
        from anachron import task

        @task
        def t1():
            return time.time()

        import time
        """
    ) == ["time.time"]


def test_import_of_dotted_module() -> None:
    assert calls(
        """
        import os.path, time
        import datetime as dt, anachron

        @anachron.task
        def t1():
            return os.path.join("a", str(time.time())), dt.date.today()
        """
    ) == ["time.time", "datetime.date.today"]


# --------------------------------------------------------------------------
# Decorator forms
# --------------------------------------------------------------------------

DECORATOR_FORMS = [
    ("from anachron import task", "@task"),
    ("from anachron import workflow", "@workflow"),
    ("import anachron as ac", "@ac.task"),
    ("import anachron", "@anachron.workflow"),
    ("import anachron as ac", "@ac.task(retries=2)"),
    ("import anachron", '@anachron.workflow(name="x")'),
    ("from anachron import task", "@task()"),
    ("from anachron import task as t", "@t"),
    ("from anachron import workflow as wf", '@wf(schedule="@daily")'),
    ("import anachron", "@anachron.task\n@other_decorator"),
    ("import anachron", "@other_decorator\n@anachron.task(retries=1)"),
]


@pytest.mark.parametrize(("imports", "decorator"), DECORATOR_FORMS)
def test_decorator_forms(imports: str, decorator: str) -> None:
    src = f"import time\n{imports}\n\n{decorator}\ndef job():\n    return time.time()\n"
    [finding] = check_source(src)
    assert finding.function == "job"
    assert finding.call == "time.time"


@pytest.mark.parametrize(("imports", "decorator"), DECORATOR_FORMS)
def test_decorator_forms_async(imports: str, decorator: str) -> None:
    src = f"import time\n{imports}\n\n{decorator}\nasync def job():\n    return time.time()\n"
    assert [f.function for f in check_source(src)] == ["job"]


def test_decorator_kind_in_message() -> None:
    findings = check(
        """
        import time
        import anachron as ac

        @ac.task(retries=2)
        def a():
            time.time()

        @ac.workflow
        def b():
            time.time()
        """
    )
    assert ["inside task 'a'" in findings[0].message, "inside workflow 'b'" in findings[1].message] == [True, True]


@pytest.mark.parametrize(
    "decorator",
    ["@staticmethod", "@functools.cache", "@lru_cache(maxsize=None)", "@tasks", "@make_task", "@task_group"],
)
def test_other_decorators_are_not_tasks(decorator: str) -> None:
    src = f"import time, functools\n\n{decorator}\ndef job():\n    return time.time()\n"
    assert check_source(src) == []


def test_aliased_non_task_name_is_not_a_task() -> None:
    # ``t`` here is an alias of some unrelated decorator.
    assert calls(
        """
        import time
        from mylib import helper as t

        @t
        def job():
            return time.time()
        """
    ) == []


def test_task_methods_in_class() -> None:
    findings = check(
        """
        import datetime
        import anachron

        class Pipeline:
            @anachron.task
            def step(self):
                return datetime.datetime.now()

            def not_a_task(self):
                return datetime.datetime.now()
        """
    )
    assert [(f.function, f.call) for f in findings] == [("step", "datetime.datetime.now")]


# --------------------------------------------------------------------------
# What is (and is not) flagged
# --------------------------------------------------------------------------


def test_clean_file() -> None:
    assert check(
        """
        import anachron
        from anachron import task

        @task
        def extract():
            return anachron.now(), anachron.time(), anachron.now().date()
        """
    ) == []


def test_empty_source() -> None:
    assert check_source("") == []


def test_calls_outside_tasks_not_flagged() -> None:
    assert calls(
        """
        import time
        from datetime import datetime, date
        from anachron import task

        STARTED = time.time()

        def helper():
            return datetime.now(), date.today()

        class Config:
            created = datetime.utcnow()

        @task
        def t1():
            return helper()

        if __name__ == "__main__":
            print(time.time())
        """
    ) == []


def test_decorator_arguments_and_defaults_of_task_not_flagged() -> None:
    # Evaluated once when the module is imported, not when the task runs.
    assert calls(
        """
        import time
        from datetime import datetime
        from anachron import task

        @task(start=datetime.now())
        def t1(at=time.time(), *, when=datetime.utcnow()):
            return at
        """
    ) == []


def test_references_without_call_not_flagged() -> None:
    assert calls(
        """
        import time
        from datetime import datetime
        from anachron import task

        @task
        def t1():
            clock = time.time
            factory = datetime.now
            return clock, factory
        """
    ) == []


def test_unrelated_attribute_calls_not_flagged() -> None:
    assert calls(
        """
        import anachron
        from anachron import task

        class Thing:
            @task
            def run(self, foo):
                self.time()
                foo.now()
                bar.today()
                anachron.now()
                anachron.time()
                return self.datetime.now()
        """
    ) == []


def test_shadowed_names_not_flagged() -> None:
    assert calls(
        """
        import time
        import datetime
        from anachron import task

        @task
        def t1(time, datetime):
            return time.time(), datetime.datetime.now()

        @task
        def t2():
            time = get_clock()
            return time.time()

        @task
        def t3():
            return [datetime.now() for datetime in sources()]
        """
    ) == []


def test_unimported_datetime_not_flagged() -> None:
    # ``datetime`` here is not known to be the stdlib class.
    assert calls(
        """
        from anachron import task

        @task
        def t1():
            return datetime.now(), time.time()
        """
    ) == []


def test_other_time_functions_not_flagged() -> None:
    assert calls(
        """
        import time
        from datetime import datetime
        from anachron import task

        @task
        def t1():
            time.sleep(1)
            time.monotonic()
            time.perf_counter()
            return datetime.fromisoformat("2024-01-01")
        """
    ) == []


def test_nested_function_lambda_comprehension_and_class_inside_task() -> None:
    findings = check(
        """
        import time
        from datetime import datetime, date
        from anachron import workflow

        @workflow
        def etl(rows):
            def stamp(row, at=date.today()):
                return row, time.time()
            later = lambda: datetime.now()
            stamps = [datetime.utcnow() for _ in rows]
            class Local:
                def m(self):
                    return time.time_ns()
            return stamp, later, stamps, Local
        """
    )
    assert [(f.line, f.call, f.function) for f in findings] == [
        (8, "datetime.date.today", "etl"),
        (9, "time.time", "etl"),
        (10, "datetime.datetime.now", "etl"),
        (11, "datetime.datetime.utcnow", "etl"),
        (14, "time.time_ns", "etl"),
    ]


def test_innermost_task_is_reported() -> None:
    findings = check(
        """
        import time
        from anachron import task, workflow

        @workflow
        def outer():
            time.time()

            @task
            def inner():
                time.time()

            return inner
        """
    )
    assert [(f.line, f.function) for f in findings] == [(7, "outer"), (11, "inner")]


def test_nested_calls_are_all_found_and_sorted() -> None:
    findings = check(
        """
        import time
        from datetime import datetime
        from anachron import task

        @task
        def t1():
            x = datetime.fromtimestamp(time.time()); y = datetime.now()
            return datetime.utcnow(), x, y
        """
    )
    assert [(f.line, f.col, f.call) for f in findings] == [
        (8, 32, "time.time"),
        (8, 50, "datetime.datetime.now"),
        (9, 12, "datetime.datetime.utcnow"),
    ]


def test_finding_is_frozen() -> None:
    [finding] = check("import time\nfrom anachron import task\n@task\ndef a():\n    time.time()\n")
    with pytest.raises(AttributeError):
        finding.line = 3  # type: ignore[misc]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_syntax_error_raises_value_error_with_location() -> None:
    with pytest.raises(ValueError, match=r"^broken\.py:3: syntax error: ") as info:
        check_source("import time\n\ndef f(:\n    pass\n", "broken.py")
    assert isinstance(info.value.__cause__, SyntaxError)


def test_syntax_error_default_path() -> None:
    with pytest.raises(ValueError, match=r"^<string>:1: syntax error: "):
        check_source("def (")


def test_syntax_error_in_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\ny = (\n")
    with pytest.raises(ValueError, match=rf"^{bad}:\d+: syntax error: "):
        check_paths([bad])


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_paths([tmp_path / "nope.py"])


# --------------------------------------------------------------------------
# Files and directories
# --------------------------------------------------------------------------

FLAGGED = "import time\nfrom anachron import task\n\n@task\ndef job():\n    return time.time()\n"


def test_check_paths_single_file(tmp_path: Path) -> None:
    file = tmp_path / "flow.py"
    file.write_text(FLAGGED)
    [finding] = check_paths([file])
    assert finding.path == str(file)
    assert finding.line == 6
    assert finding.format().startswith(f"{file}:6: time.time() reads the wall clock")
    # str paths are accepted too
    assert check_paths([str(file)]) == [finding]


def test_check_paths_directory_walk(tmp_path: Path) -> None:
    (tmp_path / "b.py").write_text("\n" + FLAGGED)
    (tmp_path / "a.py").write_text(FLAGGED + "\n@task\ndef job2():\n    return time.time_ns()\n")
    (tmp_path / "clean.py").write_text("import anachron\n\n@anachron.task\ndef ok():\n    return anachron.now()\n")
    (tmp_path / "notes.txt").write_text(FLAGGED)
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "deep.py").write_text(FLAGGED)
    for skipped in (".venv/lib", ".git", "__pycache__", ".hidden/inner"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "skipped.py").write_text(FLAGGED)
        (tmp_path / skipped / "broken.py").write_text("def (")

    findings = check_paths([tmp_path])
    assert [(Path(f.path).relative_to(tmp_path).as_posix(), f.line) for f in findings] == [
        ("a.py", 6),
        ("a.py", 10),
        ("b.py", 7),
        ("pkg/sub/deep.py", 6),
    ]


def test_check_paths_does_not_skip_hidden_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flow.py").write_text(FLAGGED)
    monkeypatch.chdir(tmp_path)
    assert [f.path for f in check_paths(["."])] == ["flow.py"]


def test_check_paths_deduplicates_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "z.py").write_text(FLAGGED)
    (tmp_path / "a.py").write_text(FLAGGED)
    findings = check_paths([tmp_path / "z.py", tmp_path, tmp_path / "a.py"])
    assert [Path(f.path).name for f in findings] == ["a.py", "z.py"]


def test_check_paths_empty(tmp_path: Path) -> None:
    assert check_paths([]) == []
    assert check_paths([tmp_path]) == []


def test_check_paths_honours_encoding_declaration(tmp_path: Path) -> None:
    file = tmp_path / "latin.py"
    file.write_bytes(b"# -*- coding: latin-1 -*-\n" + FLAGGED.encode() + b"    s = '\xe9'\n")
    assert [f.line for f in check_paths([file])] == [7]


# --------------------------------------------------------------------------
# Scoping details
# --------------------------------------------------------------------------


def test_datetime_today_is_flagged() -> None:
    assert calls(
        """
        from datetime import datetime
        from anachron import task

        @task
        def t1():
            return datetime.today()
        """
    ) == ["datetime.datetime.today"]


def test_import_wins_over_fallback_assignment() -> None:
    assert calls(
        """
        try:
            from time import time
        except ImportError:
            time = None
        from anachron import task

        @task
        def t1():
            return time()
        """
    ) == ["time.time"]


def test_class_body_import_not_visible_in_methods() -> None:
    assert calls(
        """
        from anachron import task

        class K:
            import time as kt

            @task
            def m(self):
                return kt.time()
        """
    ) == []


def test_global_declaration_resolves_to_module_import() -> None:
    assert calls(
        """
        import datetime
        from anachron import task

        @task
        def t1():
            global datetime
            return datetime.datetime.now()
        """
    ) == ["datetime.datetime.now"]


# --------------------------------------------------------------------------
# Tasks with a config (task runtimes: Spark, Dask, a subprocess)
# --------------------------------------------------------------------------


def test_tasks_with_a_config_are_checked_with_sparks_own_clock_reads() -> None:
    """A SparkTask's body (and the functions it defines, such as UDFs) is a task: the Python clock, Spark's
    clock functions and Spark SQL that reads the clock are all flagged; the partition window is not."""
    findings = check(
        """
        import time
        import anachron as ac
        from anachron.plugins.spark import SparkTask
        from pyspark.sql import functions as F
        from pyspark.sql.functions import current_date

        @ac.task(config=SparkTask(master="local[2]"))
        def load_data(start_ts, end_ts):
            spark = ac.context().spark
            df = spark.read.parquet("events").where((F.col("ts") >= start_ts) & (F.col("ts") < end_ts))
            df.withColumn("loaded_at", F.current_timestamp())
            df.where(F.col("day") == current_date())
            spark.sql("SELECT * FROM events WHERE day = current_date()")
            df.filter("ts > unix_timestamp() - 86400")
            df.selectExpr("unix_timestamp(ts) AS t", "'current_date' AS quoted_text_is_not_a_call")
            def udf(x):
                return x + time.time()
            return df

        @ac.task(config=ac.ProcessTask())
        def isolated():
            return time.time()

        def not_a_task(spark):
            return spark.sql("SELECT current_timestamp()"), F.now()
        """
    )
    assert [(f.line, f.call, f.function) for f in findings] == [
        (12, "pyspark.sql.functions.current_timestamp", "load_data"),
        (13, "pyspark.sql.functions.current_date", "load_data"),
        (14, "sql:current_date", "load_data"),
        (15, "sql:unix_timestamp()", "load_data"),
        (18, "time.time", "load_data"),
        (23, "time.time", "isolated"),
    ]
    assert findings[2].message == (
        "current_date in Spark SQL (sql) reads the wall clock inside task 'load_data'; use F.lit() of "
        "ac.context().partition_window or anachron.time() (logical time) instead")
    assert findings[0].message.startswith("pyspark.sql.functions.current_timestamp() reads the wall clock inside "
                                          "task 'load_data'; use F.lit() of ac.context().partition_window")
