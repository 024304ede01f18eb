"""Python callables used by the YAML flows in this folder (imported with the folder on sys.path)."""

import anachron as ac


def load(day: str, region: str) -> str:
    ac.context().log.info("loading %s for %s", day, region)
    return f"{region}:{day}"


@ac.task
def typed(n, ratio, flag, day, when):
    return {"n": n, "ratio": ratio, "flag": flag, "day": day, "when": when}


@ac.workflow
def py_workflow(day: str, times: int = 1):
    ac.context().log.info("python workflow for %s x%s", day, times)
    return [day] * times


def explode(**kwargs):
    raise RuntimeError("boom from flowjobs.explode")


def shift(offset: float, day, label: str, many: bool, items: list):
    """Arithmetic on typed parameters: a FLOAT input that arrived as text would fail here (TypeError)."""
    return {"shifted": offset + 0.5, "offset_type": type(offset).__name__, "day_type": type(day).__name__,
            "weekday": day.isoweekday(), "label": label, "many": many, "items": items}
