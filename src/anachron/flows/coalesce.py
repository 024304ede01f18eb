"""The ``a ?? b`` operator for flow templates, as a rewrite of the template's source before Jinja reads it.

``a ?? b`` means "``a`` if it is defined and not null, else ``b``". Jinja has no such operator and its
lexer rejects ``?``, so inside every ``{{ ... }}`` and ``{% ... %}`` tag each ``??`` chain is rewritten
into a plain conditional expression::

    a ?? b      →   ((a) if ((a) is defined and (a) is not none) else (b))
    a ?? b ?? c →   a ?? (b ?? c)              (right-associative)

``a`` is only *tested*, never printed or compared, so an undefined value (``trigger.date`` in a manual
run) never trips the strict undefined check; the flow environment's undefined also lets ``a.b.c`` be
tested when ``a.b`` is missing.

Precedence is the loosest of all operators, as in C#: ``x | upper ?? 'n/a'`` is ``(x | upper) ?? 'n/a'``,
``a ?? b ~ c`` is ``a ?? (b ~ c)``. An operand ends at the tag's end, at a ``,``, ``:`` or ``=`` and at a
bracket of the same level, and at the keywords ``if`` / ``else`` (``a ?? b if c else d`` is
``(a ?? b) if c else d``) and — in ``{% for x in ... %}`` — the first ``in``. ``??`` inside string literals,
comments (``{# #}``), ``{% raw %}`` blocks and plain text is left alone.

The rewrite keeps the template's line count, so Jinja's error lines stay right. This module is pure text
processing (no Jinja import): ``rewrite(source)`` is all there is.
"""

from __future__ import annotations

import re

__all__ = ["CoalesceError", "rewrite"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RAW_END = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_TAG_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())


class CoalesceError(ValueError):
    """A ``??`` with nothing on one side; ``lineno`` is the template line (1-based)."""

    def __init__(self, message: str, lineno: int):
        super().__init__(message)
        self.lineno = lineno


def rewrite(source: str) -> str:
    """``source`` with every ``??`` inside a Jinja tag replaced by the equivalent conditional expression."""
    if "??" not in source:
        return source
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        j = source.find("{", i)
        if j < 0 or j + 1 >= n:
            out.append(source[i:])
            break
        opener = source[j:j + 2]
        if opener == "{#":
            end = source.find("#}", j + 2)
            stop = n if end < 0 else end + 2
            out.append(source[i:stop])
            i = stop
            continue
        if opener not in ("{{", "{%"):
            out.append(source[i:j + 1])
            i = j + 1
            continue
        out.append(source[i:j])
        body_start = j + 2
        if body_start < n and source[body_start] in "-+":  # whitespace control: {{- / {%- / {%+
            body_start += 1
        close = _find_close(source, body_start, "}}" if opener == "{{" else "%}")
        if close < 0:  # unterminated: leave it for Jinja to report
            out.append(source[j:])
            break
        body_end = close - 1 if close > body_start and source[close - 1] in "-+" else close
        body = source[body_start:body_end]
        lineno = source.count("\n", 0, body_start) + 1
        if opener == "{{":
            new_body = _rewrite_expression(body, lineno, for_loop=False)
        else:
            match = _TAG_NAME.match(body)
            name = match.group(1) if match else ""
            if name == "raw":
                raw_end = _RAW_END.search(source, close + 2)
                stop = n if raw_end is None else raw_end.end()
                out.append(source[j:stop])
                i = stop
                continue
            head = match.end() if match else 0
            new_body = body[:head] + _rewrite_expression(body[head:], lineno, for_loop=name == "for")
        out.append(source[j:body_start] + new_body + source[body_end:close + 2])
        i = close + 2
    return "".join(out)


def _skip_string(text: str, i: int) -> int:
    """The index just past the string literal starting at ``text[i]`` (a quote), or ``len(text)``."""
    quote, k, n = text[i], i + 1, len(text)
    while k < n:
        c = text[k]
        if c == "\\":
            k += 2
            continue
        if c == quote:
            return k + 1
        k += 1
    return n


def _find_close(text: str, i: int, closer: str) -> int:
    """The index of ``closer`` ending the tag whose body starts at ``i``: outside strings, at bracket depth 0
    (as Jinja's lexer balances brackets); -1 when there is none."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i = _skip_string(text, i)
            continue
        if depth == 0 and text.startswith(closer, i):
            return i
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE and depth:
            depth -= 1
        i += 1
    return -1


# -- one tag's expression ---------------------------------------------------------------------------------

def _tokens(text: str, for_loop: bool) -> list[tuple[str, str]]:
    """``text`` as ``(kind, text)`` pieces: ``str``, ``open``, ``close``, ``??``, ``sep`` (an operand boundary:
    ``,`` ``:`` ``=`` ``if`` ``else``, and the ``in`` of a for loop) and ``text`` (everything else)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    seen_in = not for_loop
    while i < n:
        c = text[i]
        if c in "'\"":
            k = _skip_string(text, i)
            out.append(("str", text[i:k]))
            i = k
        elif c in _OPEN:
            out.append(("open", c))
            i += 1
        elif c in _CLOSE:
            out.append(("close", c))
            i += 1
        elif text.startswith("??", i):
            out.append(("??", "??"))
            i += 2
        elif c in ",:":
            out.append(("sep", c))
            i += 1
        elif c == "=" and not text.startswith("==", i) and (i == 0 or text[i - 1] not in "=!<>"):
            out.append(("sep", c))
            i += 1
        else:
            match = _WORD.match(text, i)
            if match is not None and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_.")):
                word = match.group(0)
                boundary = word in ("if", "else") or (word == "in" and not seen_in)
                seen_in = seen_in or word == "in"
                out.append(("sep" if boundary else "text", word))
                i = match.end()
            else:
                out.append(("text", c))
                i += 1
    return out


def _rewrite_expression(text: str, lineno: int, for_loop: bool) -> str:
    if "??" not in text:
        return text
    result, _ = _level(_tokens(text, for_loop), 0, lineno)
    return result


def _level(tokens: list[tuple[str, str]], i: int, lineno: int) -> tuple[str, int]:
    """Rewrite one bracket level from ``tokens[i]`` up to (not including) its closing bracket."""
    out: list[str] = []
    operands: list[str] = []
    current: list[str] = []

    def end_operand() -> None:
        text = "".join(current)
        current.clear()
        if operands:
            operands.append(text)
            out.append(_chain(operands, lineno))
            operands.clear()
        else:
            out.append(text)

    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "close":
            break
        if kind == "open":
            inner, i = _level(tokens, i + 1, lineno)
            closing = tokens[i][1] if i < len(tokens) else ""
            current.append(text + inner + closing)
            i += 1
            continue
        if kind == "??":
            operands.append("".join(current))
            current.clear()
        elif kind == "sep":
            end_operand()
            out.append(text)
        else:
            current.append(text)
        i += 1
    end_operand()
    return "".join(out), i


def _chain(operands: list[str], lineno: int) -> str:
    """``a ?? b ?? c`` → nested conditionals, right-associative, keeping the operands' surrounding space."""
    lead = len(operands[0]) - len(operands[0].lstrip())
    trail = len(operands[-1]) - len(operands[-1].rstrip())
    parts = [operand.strip() for operand in operands]
    if any(not part for part in parts):
        raise CoalesceError("'??' needs an expression on each side", lineno)
    result = parts[-1]
    for part in reversed(parts[:-1]):
        probe = part.replace("\n", " ")  # copies on one line: the template keeps its line count
        result = f"(({part}) if (({probe}) is defined and ({probe}) is not none) else ({result}))"
    return operands[0][:lead] + result + (operands[-1][len(operands[-1]) - trail:] if trail else "")
