"""An operator's template as a tool: ``name|"binary {placeholder}"`` (DESIGN §1, §3).

The template itself (parsing, placeholder kinds, rendering with every value checked) is
``trio_exec.templates``; this module is what the server needs of it: the schema, the description and
the plan of one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trio_exec.config import ANNOTATION_KEYS
from trio_exec.plan import ExecPlan, PlanDefaults
from trio_exec.sandbox_view import Box
from trio_exec.templates import Context, Template, describe, input_schema, render, text_arguments
from trio_exec.tools.arguments import Checked


@attrs.frozen
class TemplateTool:
    """One compiled template, published as a tool."""

    template: Template
    context: Context
    max_timeout_s: float
    checked: Checked = attrs.field(repr=False)
    pipeline = False

    @classmethod
    def create(cls, template: Template, context: Context, *, max_timeout_s: float) -> TemplateTool:
        strict = input_schema(template, max_timeout_s=max_timeout_s, stdin=template.spec.stdin, published=False)
        return cls(template, context, max_timeout_s, Checked.of(template.name, strict))

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def background(self) -> bool:
        return self.template.spec.background

    def input_schema(self, *, published: bool = True) -> dict[str, Any]:
        t = self.template
        return input_schema(t, max_timeout_s=self.max_timeout_s, stdin=t.spec.stdin, published=published)

    def description(self) -> str:
        return describe(self.template)

    def annotations(self) -> dict[str, Any] | None:
        given = self.template.spec.annotations
        return {ANNOTATION_KEYS[k]: v for k, v in given.items()} if given else None

    def as_texts(self, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        return text_arguments(self.template, arguments)

    def plan(self, arguments: Mapping[str, Any], defaults: PlanDefaults) -> ExecPlan:
        spec = self.template.spec
        box = Box(network=spec.network, writable=spec.writable, ro=spec.sandbox_ro, rw=spec.sandbox_rw)
        base = self.checked.base_plan(arguments, defaults, tool_timeout_s=spec.timeout_s, env=spec.env, box=box)
        argv = render(self.template, arguments, self.context)
        return attrs.evolve(base, argv=argv, cwd=spec.cwd or base.cwd)
