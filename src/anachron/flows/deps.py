"""``deps:`` and ``depends_on_past:`` (anachron additions to the Kestra format): a flow's dependencies (SPEC §8).

The keys mirror the Python API (``@ac.workflow(deps=[...], depends_on_past=...)``, ``ac.Dep(upstream, mapping)``),
so a flow can sit downstream of a Python workflow or of another flow::

    deps:
      - raw_events                                  # a flow id or workflow name: the inferred mapping
      - upstream: daily_summary
        mapping: {type: time_window, start_offset: -6}
      - upstream: regions
        mapping: {type: static, map: {emea: [fr, de]}}
      - upstream: grid
        mapping:
          type: dimension
          dimensions: {date: {type: time_window}, region: {type: identity}}
    depends_on_past: true

Mapping types: ``time_window`` (``start_offset``, ``end_offset``), ``identity``, ``all``, ``last``, ``static``
(``map``: downstream key → upstream keys), ``dimension`` (``dimensions``: name → mapping). Whether the upstream
exists and the mapping fits both partitions is checked when the repository is built, as for Python workflows.
"""

from __future__ import annotations

from ..graph import Dep
from ..mappings import (
    AllPartitionsMapping,
    DimensionMapping,
    IdentityMapping,
    LastPartitionMapping,
    PartitionMapping,
    StaticMapping,
    TimeWindowMapping,
)
from .errors import Issues
from .yamldoc import Field

__all__ = ["parse_deps", "parse_mapping", "MAPPING_TYPES"]

MAPPING_TYPES = ("time_window", "identity", "all", "last", "static", "dimension")
_FLOW_ID_HINT = "a flow id or workflow name, or {upstream: NAME, mapping: {type: ...}}"


def parse_deps(field: Field, flow_id: str | None) -> tuple[Dep, ...]:
    """The flow's dependencies; ``FlowError`` at the line of the entry that is wrong."""
    if field.is_null():
        return ()
    found: dict[str, Dep] = {}
    issues = Issues()  # every wrong entry is reported, not the first only
    for item in field.sequence(f"a list of dependencies ({_FLOW_ID_HINT})"):
        with issues.catch():
            dep = _dep(item, flow_id)
            if dep.name in found:
                raise item.error(f"{dep.name!r} is listed twice")
            found[dep.name] = dep
    issues.raise_if_any()
    return tuple(found.values())


def _dep(item: Field, flow_id: str | None) -> Dep:
    if item.is_mapping():
        keys = item.mapping(("upstream", "mapping"), required=("upstream",), what="a dependency")
        name = keys["upstream"].text("the upstream flow id or workflow name")
        mapping = parse_mapping(keys["mapping"]) if "mapping" in keys and not keys["mapping"].is_null() else None
    else:
        name, mapping = item.text(_FLOW_ID_HINT), None
    if not name:
        raise item.error("the upstream name is empty")
    if name == flow_id:
        raise item.error(f"{name!r} is this flow itself; use `depends_on_past: true` for a key that needs the "
                         "key before it")
    return Dep(name, mapping)


def parse_mapping(field: Field, nested: bool = False) -> PartitionMapping:
    refused = ("dimension", "a dimension's mapping cannot itself be a dimension mapping") if nested else None
    kind = field.type_of(MAPPING_TYPES, "mapping", "a mapping ({type: time_window, ...})", refused)
    if kind == "time_window":
        keys = field.mapping(("type", "start_offset", "end_offset"))
        offsets = {name: keys[name].integer() for name in ("start_offset", "end_offset") if name in keys}
        try:
            return TimeWindowMapping(**offsets)
        except ValueError as exc:
            raise field.error(str(exc)) from None
    if kind == "static":
        keys = field.mapping(("type", "map"), required=("map",))
        table: dict[str, list[str]] = {}
        for down, ups in keys["map"].items("a mapping of downstream key → list of upstream keys"):
            values = [ups] if not isinstance(ups.value, list) else ups.sequence()
            table[down] = [v.scalar_text("an upstream key") for v in values]
        return StaticMapping(table)
    if kind == "dimension":
        keys = field.mapping(("type", "dimensions"), required=("dimensions",))
        return DimensionMapping({name: parse_mapping(child, nested=True)
                                 for name, child in keys["dimensions"].items("a mapping of dimension → mapping")})
    field.mapping(("type",))
    simple: dict[str, type[PartitionMapping]] = {"identity": IdentityMapping, "all": AllPartitionsMapping,
                                                 "last": LastPartitionMapping}
    return simple[kind]()
