"""The tools a server publishes: each turns a call's arguments into an ``ExecPlan`` (``trio_exec.plan``).

One protocol, one module per kind of tool: ``template`` (an operator's ``name|"binary {placeholder}"``)
and ``shell`` (``shell_execute``, mcp-shell-server's argv interface). The server publishes what a tool
says of itself and runs the plan it returns; a new kind of tool is one more module here, built by the
composition root (``trio_exec.compose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from trio_exec.plan import ExecPlan, PlanDefaults


class Tool(Protocol):
    """A published tool: what it says of itself, and how a call becomes a plan."""

    @property
    def name(self) -> str: ...

    @property
    def pipeline(self) -> bool:
        """Its results list each stage's program and status (``stages``)."""
        ...

    @property
    def background(self) -> bool:
        """Its calls may run as jobs (``trio_exec.jobs``): the operator's choice."""
        ...

    def input_schema(self, *, published: bool = True) -> dict[str, Any]:
        """The schema clients see (``published``), or the stricter one calls are checked against."""
        ...

    def description(self) -> str: ...

    def annotations(self) -> dict[str, Any] | None:
        """MCP tool annotations (``readOnlyHint``, ...), None when the operator gave none."""
        ...

    def as_texts(self, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        """The numbers (and booleans) a client gave where the tool takes text, as their canonical text.

        The published schema allows them; everything after this (validation, argv, the audit trail) sees text.
        """
        ...

    def plan(self, arguments: Mapping[str, Any], defaults: PlanDefaults) -> ExecPlan:
        """Validate a call and plan it; raises ``InvalidArguments``, ``Rejected`` or ``SpawnFailed`` first."""
        ...
