"""YAML flows: a Kestra-style pipeline file that becomes an ordinary ``anachron.Workflow``.

The file format (keys, task types, triggers, inputs, partitions, template variables and filters) is
documented for users in the docs site's reference page, ``docs/reference/yaml-flows.md``; each module here
documents its part for maintainers: ``spec`` (the top-level keys), ``tasks``, ``triggers``, ``inputs``,
``partitions``, ``templates``, ``jinja_env``, ``variables``, ``coalesce`` (``??``) and ``dates`` (the
``date`` filter).

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
