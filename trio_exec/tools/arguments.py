"""What every tool checks of a call's arguments before its own rules, and the plan every tool starts from.

The low-level MCP server does not validate against ``inputSchema``; each tool does, here, with its strict
schema (``published=False``): arguments that break it are ``invalid_arguments``, named, never echoed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trio_exec.errors import InvalidArguments, Rejected
from trio_exec.plan import ExecPlan, PlanDefaults
from trio_exec.sandbox_view import Box
from trio_exec.values import MIN_TIMEOUT_S

if TYPE_CHECKING:
    import jsonschema  # imported where a call is checked: --dry-run never checks one, and it costs ~30 ms


def _non_finite(value: Any, where: str) -> str | None:
    """Where a NaN or infinity hides in ``value`` (JSON allows neither, Python's parser reads both)."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, Mapping):
        return next((w for k, v in value.items() if (w := _non_finite(v, f"{where}.{k}")) is not None), None)
    if isinstance(value, (list, tuple)):
        return next((w for i, v in enumerate(value) if (w := _non_finite(v, f"{where}[{i}]")) is not None), None)
    return None


def check_finite(arguments: Mapping[str, Any]) -> None:
    """Refuse NaN, Infinity and -Infinity anywhere in the arguments, before anything starts."""
    for name, value in arguments.items():
        where = _non_finite(value, name)
        if where is not None:
            raise InvalidArguments(
                f"argument {name!r}: {where} is NaN or infinite, which is not a JSON number; give a finite number",
                argument=name,
            )


def encode_stdin(stdin: Any, limit: int) -> bytes | None:
    """The ``stdin`` argument as UTF-8, once, refused above ``limit`` bytes (``--max-stdin-bytes``)."""
    if not isinstance(stdin, str):
        return None
    # Each character is 1-4 bytes: decide from the length alone where it can, without a copy.
    data = None if len(stdin) > limit else stdin.encode("utf-8", "surrogatepass")
    if data is None or len(data) > limit:
        raise Rejected(
            f"argument 'stdin': more than the limit of {limit} bytes (--max-stdin-bytes); "
            "send less input, or write it to a file inside the base path and pass its name",
            argument="stdin",
        )
    return data


def check_schema(tool: str, validator: jsonschema.protocols.Validator, arguments: Mapping[str, Any]) -> None:
    """``InvalidArguments`` naming the argument and the rule of the first break of the strict schema."""
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
    if error is not None:
        raise InvalidArguments(f"tool {tool!r}: {_schema_problem(error)}", argument=_schema_argument(error))


_SCHEMA_RULES = {
    "type": "must be of type {}",
    "maxLength": "is longer than {} characters",
    "enum": "must be one of {}",
    "pattern": "must match the pattern {}",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be greater than {}",
}


def _schema_argument(error: jsonschema.ValidationError) -> str | None:
    """The argument a schema error is about: its path, or the property a required/unknown rule names."""
    if error.path:
        return str(error.path[0])
    if not isinstance(error.instance, Mapping):
        return None
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [p for p in error.validator_value if p not in error.instance]
        return str(missing[0]) if missing else None
    if error.validator == "additionalProperties":
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = [p for p in error.instance if p not in known]
        return str(extra[0]) if extra else None
    return None


def _schema_problem(error: jsonschema.ValidationError) -> str:
    # Never echo the value: it may be a secret. Property names and rules are safe to show.
    if error.validator in ("required", "additionalProperties"):
        return str(error.message)
    where = f"argument {error.path[0]!r}" if error.path else "arguments"
    rule = _SCHEMA_RULES.get(str(error.validator), f"breaks the schema rule {error.validator}")
    return f"{where} {rule.format(error.validator_value)}"


@attrs.frozen(eq=False)
class Checked:
    """A tool's strict schema, and the checks every call passes before the tool's own rules."""

    tool: str
    strict_schema: Mapping[str, Any]

    @classmethod
    def of(cls, tool: str, strict_schema: Mapping[str, Any]) -> Checked:
        return cls(tool=tool, strict_schema=dict(strict_schema))

    @functools.cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        """Built at the first call (jsonschema is imported only when serving)."""
        import jsonschema

        return jsonschema.Draft202012Validator(dict(self.strict_schema))

    def base_plan(
        self,
        arguments: Mapping[str, Any],
        defaults: PlanDefaults,
        *,
        tool_timeout_s: float | None,
        env: Mapping[str, str],
        box: Box,
    ) -> ExecPlan:
        """Check the arguments (finite, schema, timeout, stdin) and start the plan; raises before anything runs."""
        check_finite(arguments)
        check_schema(self.tool, self.validator, arguments)
        asked = arguments.get("timeout")
        if asked is not None and not asked >= MIN_TIMEOUT_S:  # the schema says so too; one layer is not enough
            raise Rejected(f"argument 'timeout': give at least {MIN_TIMEOUT_S:g} seconds", argument="timeout")
        operator = defaults.timeout_s(tool_timeout_s)
        timeout = min(float(asked or tool_timeout_s or defaults.cmd_timeout_s), defaults.max_timeout_s)
        return ExecPlan(
            argv=(),
            wrapper=defaults.wrapper,
            cwd=defaults.cwd,
            env={**defaults.env, **env},
            stdin=encode_stdin(arguments.get("stdin"), defaults.max_stdin_bytes),
            timeout_s=timeout,
            max_output_bytes=defaults.max_output_bytes,
            sandbox=defaults.sandbox,
            box=box,
            timeout_chosen=timeout < operator,
            tool_timeout_s=tool_timeout_s,
        )
