"""What may enter anachron: text a database can store, and how big a request may be.

Every door (the Python API, the command line, HTTP) refuses, naming the field, before anything is written:

- **NUL** (``"\\x00"``) anywhere in text — PostgreSQL's ``text`` cannot hold it (SQLite can, so a value would
  work on one database and fail on the other) — and **lone surrogates** (``"\\ud800"``), which UTF-8 cannot
  encode. In an id or a filter such text can match nothing; in a name or a key it could not be stored.
- **Sizes**: a run's or a backfill's ``params`` (and ``config``) at most ``MAX_PARAMS_BYTES`` of JSON; at most
  ``MAX_TAGS`` tags (labels), keys of at most ``MAX_TAG_KEY`` characters and values of at most
  ``MAX_TAG_VALUE``. The HTTP server caps request bodies at ``MAX_BODY_BYTES`` (configurable, 413 beyond).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_BODY_BYTES", "MAX_PARAMS_BYTES", "MAX_TAGS", "MAX_TAG_KEY", "MAX_TAG_VALUE", "check_text",
           "check_tags", "check_params_size", "unstorable", "why_unstorable"]

MAX_BODY_BYTES = 1_000_000  # the JSON API's request bodies (the web UI's forms have the same cap)
MAX_PARAMS_BYTES = 256 * 1024
MAX_TAGS = 100
MAX_TAG_KEY = 200
MAX_TAG_VALUE = 1_000


def why_unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL, a lone surrogate), or ``None`` when it can."""
    if "\x00" in text:
        return f"contains a NUL character (\\x00) at position {text.index(chr(0))}, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains text that is not valid Unicode (a lone surrogate) at position {exc.start}"
    return None


def check_text(value: Any, field: str) -> Any:
    """``value`` unchanged when it is not text or is storable text; ``ValueError`` naming ``field`` otherwise."""
    if isinstance(value, str):
        why = why_unstorable(value)
        if why is not None:
            raise ValueError(f"{field}: {why}")
    return value


def unstorable(data: Any, root: str = "") -> tuple[str, str] | None:
    """The first place in a JSON-like value (``params.name``, ``tags.0.value``) holding text that cannot be
    stored, with why; ``None`` when there is none. Walks without recursion (hostile nesting is deep)."""
    stack: list[tuple[Any, str]] = [(data, root)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            why = why_unstorable(value)
            if why is not None:
                return path or "body", why
        elif isinstance(value, Mapping):
            for key, item in value.items():
                shown = f"{path}.{key}" if path else str(key)
                if isinstance(key, str):
                    why = why_unstorable(key)
                    if why is not None:
                        return shown.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00"), \
                            f"the name {why}"
                stack.append((item, shown))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))
    return None


def check_tags(tags: Mapping[str, str], field: str = "tags") -> Mapping[str, str]:
    """At most ``MAX_TAGS`` tags with keys and values within their caps, all storable text."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{field}: at most {MAX_TAGS} tags, got {len(tags)}")
    for key, value in tags.items():
        check_text(key, f"{field}: the key {key[:40]!r}")
        check_text(value, f"{field}.{key[:40]}")
        if len(key) > MAX_TAG_KEY:
            raise ValueError(f"{field}: the key {key[:40]!r}... is longer than {MAX_TAG_KEY} characters")
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"{field}.{key[:40]}: the value is longer than {MAX_TAG_VALUE:,} characters")
    return tags


def check_params_size(params: Mapping[str, Any], field: str = "params") -> Mapping[str, Any]:
    """``params`` whose JSON is at most ``MAX_PARAMS_BYTES`` (dates and other values counted as their text)."""
    size = len(json.dumps(params, default=str, ensure_ascii=False).encode("utf-8", "replace"))
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"{field}: {size:,} bytes of JSON, more than the {MAX_PARAMS_BYTES:,} allowed "
                         "(pass a reference to big data, such as a path or a table name)")
    return params
