"""The ``shell_execute`` tool (DESIGN §1, §3): mcp-shell-server's interface on trio-exec's engine.

Startup (``ShellTool.create``): every allowlisted program is resolved and pinned; allowlisting a
shell, interpreter, wrapper, editor, pager or debugger is a ``ConfigError`` unless
``--allow-dangerous``; every ``--allow-patterns`` entry must be unable to match a path, a space or
shell syntax, and (unless ``--allow-dangerous``) must match no refused-family or unpoliced blacklist
name. Per call (``ShellTool.plan``, pure apart from path checks and a PATH look-up for
pattern-matched names): directory confinement -> parsing (``argv.parse_command``) -> the
allowlist -> per-program policies on every stage -> an ``ExecPlan`` for the runner. Every refusal
happens before anything is opened, truncated or started.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from trio_exec import argv, commands, confinement, programs
from trio_exec.allow_patterns import check_allow_pattern, pattern_refused_examples
from trio_exec.elfsyms import can_run_programs
from trio_exec.errors import ConfigError, Rejected, SpawnFailed
from trio_exec.plan import ExecPlan, PlanDefaults
from trio_exec.programs import DEFAULT_BLACKLIST, blacklist_names
from trio_exec.regexes import compile_regex
from trio_exec.sandbox_view import Box
from trio_exec.templates import as_text, other_json_types, resolve_program
from trio_exec.tools.arguments import Checked
from trio_exec.values import MAX_ARGV, MAX_VALUE_BYTES, MIN_TIMEOUT_S

NAME = "shell_execute"

# Programs read these; a pager or editor would turn a read into a shell (git log, git commit).
SAFE_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_CONFIG_NOSYSTEM": "1", "TERM": "dumb"}


@attrs.frozen
class ShellTool:
    """The allowlist and everything a call needs to become a pipeline."""

    base_path: str
    allow_commands: frozenset[str]
    allow_patterns: tuple[re.Pattern[str], ...]
    pinned: Mapping[str, str]  # allowlisted name -> absolute program path
    search_path: str
    allow_dangerous: bool
    max_timeout_s: float
    max_output_bytes: int
    checked: Checked = attrs.field(repr=False)
    background: bool = False
    name = NAME
    pipeline = True

    @classmethod
    def create(
        cls,
        *,
        names: tuple[str, ...],
        patterns: tuple[str, ...],
        base_path: str,
        search_path: str,
        allow_dangerous: bool,
        allow_missing: bool,
        max_timeout_s: float,
        max_output_bytes: int,
        blacklist: tuple[str, ...] = DEFAULT_BLACKLIST,
        background: bool = False,
    ) -> ShellTool:
        compiled = []
        refusable = blacklist_names(blacklist)
        for pattern in patterns:
            problem = check_allow_pattern(pattern)
            if problem is not None:
                raise ConfigError(f"--allow-patterns {pattern!r}: {problem}")
            examples = [] if allow_dangerous else pattern_refused_examples(pattern, refusable)
            if examples:
                raise ConfigError(
                    f"--allow-patterns {pattern!r}: it matches refused programs such as "
                    f"{', '.join(map(repr, examples))}; list the programs you mean in --allow-commands "
                    "(or pass --allow-dangerous if you accept that)"
                )
            compiled.append(compile_regex(pattern))
        pinned = {}
        for name in names:
            if not programs.program_allowed(name, frozenset({name}), ()):
                raise ConfigError(f"--allow-commands {name!r}: give bare program names (no paths or spaces)")
            path = resolve_program(name, search_path)
            if path is None:
                if allow_missing:
                    continue
                raise ConfigError(f"--allow-commands {name!r}: not installed (searched {search_path})")
            if not allow_dangerous and (programs.is_refused_program(name) or programs.is_refused_program(path)):
                raise ConfigError(
                    f"--allow-commands {name!r}: a shell, interpreter, wrapper, editor, pager or debugger would let "
                    "the agent run anything; remove it, or pass --allow-dangerous if you accept that"
                )
            pinned[name] = path
            can_run_programs(path)  # read once here (cached); the behaviour rule uses it on every call
        return cls(
            base_path=base_path,
            allow_commands=frozenset(names),
            allow_patterns=tuple(compiled),
            pinned=pinned,
            search_path=search_path,
            allow_dangerous=allow_dangerous,
            max_timeout_s=max_timeout_s,
            max_output_bytes=max_output_bytes,
            checked=Checked.of(NAME, _input_schema(base_path, max_timeout_s, published=False)),
            background=background,
        )

    def input_schema(self, *, published: bool = True) -> dict[str, Any]:
        return _input_schema(self.base_path, self.max_timeout_s, published=published)

    def description(self) -> str:
        allowed = ", ".join(sorted(self.allow_commands)) or "(none by name)"
        patterns = ", ".join(p.pattern for p in self.allow_patterns)
        return (
            "Run an allowed program with arguments, without a shell. Pipelines with discrete '|' elements and "
            "'<', '>', '>>' redirections to files inside the base path are supported.\n"
            f"Allowed programs: {allowed}." + (f" Also names fully matching: {patterns}." if patterns else "") + "\n"
            f"Working directory: {self.base_path} unless 'directory' says otherwise; timeout at most "
            f"{self.max_timeout_s:g}s; output capped at {self.max_output_bytes} bytes per stream. Programs such as "
            "git, find, awk, tar, sort are policed by per-program rules (e.g. find -exec, git -c, awk system() are "
            "refused)."
        )

    def annotations(self) -> dict[str, Any] | None:
        return None

    def as_texts(self, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        """Numbers given as argv items (``["head", "-n", 5]``) as their canonical text."""
        command = arguments.get("command")
        if not isinstance(command, list):
            return arguments
        return {**arguments, "command": [v if (text := as_text(v)) is None else text for v in command]}

    def _check_allowed(self, name: str) -> None:
        if not programs.program_allowed(name, self.allow_commands, self.allow_patterns):
            allowed = ", ".join(sorted(self.allow_commands))
            raise Rejected(
                f"argument 'command': the program {name!r} is not allowed; allowed programs: {allowed}",
                argument="command",
            )

    def plan(self, arguments: Mapping[str, Any], defaults: PlanDefaults) -> ExecPlan:
        """Validate a call and turn it into a pipeline (and its stages' program names)."""
        box = Box(network=defaults.sandbox_network)
        base = self.checked.base_plan(arguments, defaults, tool_timeout_s=None, env={}, box=box)
        cwd = confinement.confine_directory(arguments.get("directory"), self.base_path)
        parsed = argv.parse_command(list(arguments["command"]), base_path=self.base_path)
        names = [stage.argv[0] for stage in parsed.stages]
        for name in names:
            self._check_allowed(name)
        # Resolved where installed; a missing program is still policed by name first, so whether a
        # call is refused never depends on what happens to be installed.
        found = {name: self.pinned.get(name) or resolve_program(name, self.search_path) for name in names}
        paths = {name: path for name, path in found.items() if path is not None}
        commands.check_plan(
            parsed,
            base_path=self.base_path,
            allow_dangerous=self.allow_dangerous,
            directory=cwd,
            program_paths=paths,
            search_path=self.search_path,
        )
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise SpawnFailed(f"program {missing[0]!r} is not installed")
        if parsed.stdin_path is not None and "stdin" in arguments:
            raise Rejected("argument 'stdin': the command already reads a file with '<'; give one or the other",
                           argument="stdin")  # fmt: skip
        stages = [(paths[s.argv[0]], *s.argv[1:]) for s in parsed.stages]
        return attrs.evolve(
            base,
            argv=stages[0],
            more=tuple(stages[1:]),
            cwd=cwd,
            env={**base.env, **SAFE_ENV, "HOME": defaults.private_home},
            stdin_path=parsed.stdin_path,
            stdout_path=parsed.stdout_path,
            append=parsed.append,
            programs=tuple(names),
        )


def _input_schema(base_path: str, max_timeout_s: float, *, published: bool) -> dict[str, Any]:
    """The tool's JSON schema; the published one lets argv items be numbers (``["head", "-n", 5]``),
    turned into their canonical text (``as_texts``) before the strict one checks them."""
    text = {"type": "string", "maxLength": MAX_VALUE_BYTES}
    return {
        "type": "object",
        "properties": {
            "command": {
                "type": "array",
                "items": {"anyOf": [text, *other_json_types(booleans=False)]} if published else text,
                "minItems": 1,
                "maxItems": MAX_ARGV,
                "description": 'The command as an argv array, e.g. ["grep", "-n", "TODO", "notes.txt"]. '
                'Discrete "|" pipes stages; "<", ">", ">>" followed by a file redirect (files inside the '
                "base path). Everything else is passed as data; there is no shell.",
            },
            "stdin": {"type": "string", "description": "Text written to the first stage's standard input."},
            "directory": {
                "type": "string",
                "description": f"Working directory inside {base_path} (relative to it, or absolute).",
            },
            "timeout": {
                "type": "number",
                "minimum": MIN_TIMEOUT_S,
                "maximum": max_timeout_s,
                "description": f"Seconds before the pipeline is stopped ({MIN_TIMEOUT_S:g} to {max_timeout_s:g}).",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }
