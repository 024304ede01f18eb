"""YAML flows: a Kestra-style pipeline file that becomes an ordinary ``anachron.Workflow``.

A flow file gets everything a Python workflow has — partitions, backfills, schedules, run history, the
command line — because loading it builds a ``Workflow`` whose function runs the file's tasks::

    id: daily_export                      # required: the workflow's name (letters, digits, _ - .)
    namespace: company.team               # kept as workflow.namespace and the tag anachron/namespace
    description: Export the day's orders
    labels: {team: data}                  # or Kestra's [{key: team, value: data}]: the workflow's tags
    inputs:                               # the run's parameters, typed (STRING INT FLOAT BOOLEAN DATE DATETIME)
      - {id: region, type: STRING, defaults: us}
    partitions: {type: daily, start: 2024-01-01, timezone: Europe/Paris}   # anachron addition, see below
    tasks:                                # run in order; each is an anachron task (retries, pools, cancel)
      - id: export
        type: shell                       # or io.kestra.plugin.scripts.shell.Commands
        commands:
          - ./export.sh --day {{ partition.key }} --region {{ inputs.region | shell_quote }}
      - id: load
        type: python
        callable: jobs:load               # imported at run time; the flow's folder is on sys.path
        args: {day: "{{ partition.key }}"}
    triggers:
      - {id: nightly, type: schedule, cron: "0 2 * * *", timezone: Europe/Paris, recoverMissedSchedules: LAST}

Instead of ``tasks``, ``workflow: pkg.mod:fn`` with ``parameters:`` runs a Python workflow's function with
the rendered parameters.

- Task types and their keys: ``tasks``. Triggers: ``triggers``. Inputs: ``inputs``.
- ``partitions:`` (not in Kestra): ``daily`` / ``hourly`` / ``weekly`` / ``monthly`` (``start``, ``end``,
  ``timezone``, ``fmt``, ``end_offset``), ``cron`` (plus ``cron``), ``static`` (``keys``), ``dynamic``
  (``name``) and ``multi`` (``dimensions: {name: {...}}``): see ``partitions``.
- Templates are Jinja2, sandboxed, with ``a ?? b`` ("``a`` if defined and not null, else ``b``"), the filters
  ``shell_quote`` and ``date``, and the variables ``trigger.date``, ``execution.id``, ``execution.startDate``,
  ``partition.key`` / ``keys`` / ``start`` / ``end``, ``inputs.*``, ``labels.*``, ``flow.id`` /
  ``flow.namespace``: see ``templates``, ``jinja_env`` and ``variables`` (times are ISO-8601 with the offset
  of the timezone they stand for).
- Errors: a file is checked completely when loaded and refused as a whole, with every problem as
  ``<file>:<line>: <field>: <reason>`` (``FlowError``); a task that fails at run time raises
  ``FlowTaskError`` naming the task.

``import anachron.flows`` is cheap: PyYAML and Jinja2 are imported when a flow is first loaded.
"""

from __future__ import annotations

from .errors import FlowError, FlowIssue, FlowTaskError
from .loader import FLOW_SUFFIXES, is_flow_file, load_flow, load_flow_by_name, load_flows

__all__ = ["FLOW_SUFFIXES", "FlowError", "FlowIssue", "FlowTaskError", "is_flow_file", "load_flow",
           "load_flow_by_name", "load_flows"]
