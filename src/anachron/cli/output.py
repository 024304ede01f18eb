"""Rendering results: JSON (streamed, so a million-key plan never becomes one big string) and text helpers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import IO, Any

STATUS_STYLE = {
    "success": "green", "completed": "green", "failed": "red", "canceled": "yellow", "running": "cyan",
    "in_progress": "cyan", "queued": "blue", "requested": "blue", "paused": "magenta", "missing": "dim",
}


def jsonable(value: Any) -> Any:
    """Dataclasses → dicts, datetimes → ISO strings, any sequence → list (lazy ones are enumerated)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic model (a backfill's request)
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, (bool, int, float)):
        return value.decode() if isinstance(value, bytes) else value
    if isinstance(value, (Sequence, set, frozenset, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def write_json(value: Any, out: IO[str] | None = None) -> None:
    """Write one JSON value and a newline; sequences are streamed element by element."""
    if out is None:
        from .streams import results

        out = results()
    _write(value, out)
    out.write("\n")
    out.flush()


def _write(value: Any, out: IO[str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out.write("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.write(", ")
            out.write(json.dumps(str(key)) + ": ")
            _write(item, out)
        out.write("}")
    elif isinstance(value, (str, bytes, bool, int, float, datetime, date, timedelta)) or value is None:
        out.write(json.dumps(jsonable(value)))
    elif isinstance(value, (Sequence, set, frozenset)):
        out.write("[")
        for i, item in enumerate(value):
            if i:
                out.write(", ")
            _write(item, out)
        out.write("]")
    else:
        out.write(json.dumps(jsonable(value)))


def count(n: int) -> str:
    """A count with thousands separators: ``17,544``."""
    return f"{n:,}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def when(value: datetime | None) -> str:
    """A compact UTC time: ``2026-01-01 12:00:05``."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
