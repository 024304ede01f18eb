"""``triggers:``: schedule triggers, which become the workflow's ``anachron.Schedule`` list.

=========================  ============================================================================
key                        meaning
=========================  ============================================================================
``id``                     the schedule's id (default ``schedule``); unique in the flow
``type``                   ``schedule`` (or Kestra's ``io.kestra.plugin.core.trigger.Schedule``,
                           ``io.kestra.core.models.triggers.types.Schedule``)
``cron``                   5 fields or a macro (``@daily``, ``@hourly``...)
``timezone``               an IANA zone (default ``UTC``)
``recoverMissedSchedules`` ``ALL`` (default), ``LAST`` or ``NONE``: ticks missed while no daemon ran
``overlap``                ``SKIP`` (default), ``BUFFER`` or ``ALLOW`` (an anachron addition)
``disabled``               ``true`` leaves the trigger out
``description``            free text
=========================  ============================================================================
"""

from __future__ import annotations

from ..schedules import Schedule, zone
from .yamldoc import Field

__all__ = ["parse_trigger", "SCHEDULE_TYPES"]

SCHEDULE_TYPES = ("schedule", "io.kestra.plugin.core.trigger.Schedule",
                  "io.kestra.core.models.triggers.types.Schedule")
_KEYS = ("id", "type", "cron", "timezone", "recoverMissedSchedules", "overlap", "disabled", "description")
_RECOVER = {"ALL": "all", "LAST": "last", "NONE": "none"}
_OVERLAP = {"SKIP": "skip", "BUFFER": "buffer", "ALLOW": "allow"}


def _strip_field(message: str, *names: str) -> str:
    """A schedule's ``ValueError`` without its own field prefix (the ``FlowError`` names the field)."""
    for name in names:
        for sep in (": ", " "):
            if message.startswith(name + sep):
                return message[len(name) + len(sep):]
    return message


def _choice(field: Field, choices: dict[str, str]) -> str:
    text = field.text()
    if text.upper() not in choices:
        raise field.error(f"expected one of {', '.join(choices)}, got {text!r}")
    return choices[text.upper()]


def parse_trigger(field: Field) -> Schedule | None:
    """One trigger as a ``Schedule`` (``None`` when disabled); ``FlowError`` naming the field otherwise."""
    keys_any = dict(field.items("a trigger ({id, type, cron, ...})"))
    if "type" not in keys_any:
        raise field.error(f"missing required key 'type' (one of {', '.join(SCHEDULE_TYPES)})")
    trigger_type = keys_any["type"].text()
    if trigger_type not in SCHEDULE_TYPES:
        raise keys_any["type"].error(f"unknown trigger type {trigger_type!r}; expected {SCHEDULE_TYPES[0]} (or "
                                     f"{', '.join(SCHEDULE_TYPES[1:])})")
    keys = field.mapping(_KEYS, required=("cron",))
    schedule_id = keys["id"].text() if "id" in keys else "schedule"
    if not schedule_id.strip():
        raise keys["id"].error("must not be empty")
    if "description" in keys:
        keys["description"].text()
    cron = keys["cron"].text("a cron expression (a string)")
    timezone = "UTC"
    if "timezone" in keys:
        timezone = keys["timezone"].text("a timezone name such as Europe/Paris")
        try:
            zone(timezone)
        except ValueError as exc:
            raise keys["timezone"].error(_strip_field(str(exc), "timezone")) from None
    recover = _choice(keys["recoverMissedSchedules"], _RECOVER) if "recoverMissedSchedules" in keys else "all"
    overlap = _choice(keys["overlap"], _OVERLAP) if "overlap" in keys else "skip"
    disabled = keys["disabled"].boolean() if "disabled" in keys else False
    try:
        schedule = Schedule(cron, timezone=timezone, recover_missed=recover, overlap=overlap, id=schedule_id)
    except ValueError as exc:
        raise keys["cron"].error(_strip_field(str(exc), "Schedule.cron")) from None
    return None if disabled else schedule

