"""shell_execute's parser: the agent's argv array -> a ``CommandPlan`` of pipeline stages and redirections.

Job (DESIGN.md §3 "The shell_execute tool"): turn ``command`` into a ``CommandPlan`` (stages joined by pipes,
at most one ``<`` input file and one ``>``/``>>`` output file, targets confined by ``confinement.py``), before
any process exists. Policing the stages is ``commands.py``'s job.

Invariants:
- No shell, ever. Only the discrete elements ``|``, ``<``, ``>``, ``>>`` are syntax. Every other element reaches
  execve unchanged: ``"a;b"``, ``"x|"``, ``""`` and newlines are data. Discrete ``;``, ``&&``, ``||``, ``&`` and
  the other shell operators (``2>``, ``|&``, ``<<``, ...) are refused, never passed on as data.
- Pure: no trio, no subprocess; the OS is touched only to confine redirection targets.
- Every refusal is ``Rejected(message, argument="command")``; the message names the element (``command[3]``),
  the rule, and what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from trio_exec.confinement import confine_file
from trio_exec.errors import Rejected
from trio_exec.paths import PathUse, real_base
from trio_exec.programs import PROGRAM_NAME
from trio_exec.text import excerpt
from trio_exec.values import MAX_ARGV, MAX_VALUE_BYTES

__all__ = ["MAX_STAGES", "CommandPlan", "Stage", "is_operator_element", "parse_command"]

MAX_STAGES = 16  # processes per call; a longer pipeline is almost certainly not what the agent meant


@attrs.frozen
class Stage:
    """One pipeline stage; ``argv[0]`` is the program name as the agent wrote it (e.g. ``"grep"``)."""

    argv: tuple[str, ...]


@attrs.frozen
class CommandPlan:
    """A parsed ``command``: stages connected by pipes in order, and the confined redirection files."""

    stages: tuple[Stage, ...]
    stdin_path: str | None  # "<": an existing regular file inside the base path (or /dev/null), fed to stage 1
    stdout_path: str | None  # ">"/">>": a file inside the base path (or /dev/null), written by the last stage
    append: bool  # True for '>>'


# --------------------------------------------------------------------------- operators

PIPE, INPUT, OUTPUT, APPEND = "|", "<", ">", ">>"
DEV_NULL = "/dev/null"  # the one redirection target outside the base path: '> /dev/null', '< /dev/null'
_SYNTAX = frozenset({PIPE, INPUT, OUTPUT, APPEND})
_HEREDOC = re.compile(r"[0-9]*<<[-<]?")
_FD_REDIRECTION = re.compile(r"[0-9]*(?:[<>]&[0-9]*-?|>\||<>)|[0-9]+(?:>>?|<)|&>>?")


def _operator_problem(element: str) -> str | None:
    """Why a discrete shell operator other than | < > >> is refused, with what to do instead."""
    if element in (";", ";;", ";&", ";;&"):
        return "';' runs commands one after another in a shell; make one call per command"
    if element in ("&&", "||"):
        return f"'{element}' chains commands in a shell; make separate calls and decide from the exit code"
    if element == "&":
        return "'&' runs a command in the background; every command runs to completion (use '|' to connect two)"
    if element == "|&":
        return "'|&' also pipes stderr; stderr is returned separately in the result, so use '|'"
    if _HEREDOC.fullmatch(element):
        return "here-documents and here-strings are not supported; pass the text in the 'stdin' argument"
    if _FD_REDIRECTION.fullmatch(element):
        return (
            "only '<', '>' and '>>' of stdin and stdout are supported; stderr is returned separately in the "
            "result, so drop redirections such as '2>' and '2>&1'"
        )
    return None


def is_operator_element(element: str) -> bool:
    """True for an element that is shell syntax when discrete: | < > >> (used) or a refused operator."""
    return element in _SYNTAX or _operator_problem(element) is not None


# --------------------------------------------------------------------------- parsing


def _at(index: int, element: str, rule: str) -> Rejected:
    return Rejected(f"command[{index}] {excerpt(element)}: {rule}", argument="command")


_PROGRAM_RULE = (
    "a program must be a bare name such as 'grep' (letters, digits and . _ + -; no '/', spaces or shell "
    "characters); the server runs the program it resolved at startup, and arguments go in separate elements"
)


def _check_elements(elements: Sequence[object]) -> list[str]:
    if not elements:
        raise Rejected(
            "command: the array is empty; give the program and its arguments, e.g. ['ls', '-l']", argument="command"
        )
    if len(elements) > MAX_ARGV:
        raise Rejected(f"command: {len(elements)} elements, more than the limit of {MAX_ARGV}", argument="command")
    checked: list[str] = []
    for index, element in enumerate(elements):
        if not isinstance(element, str):
            raise Rejected(f"command[{index}]: every element must be a string", argument="command")
        if "\x00" in element:
            raise _at(index, element, "NUL bytes cannot be passed to a program; remove the NUL character")
        if len(element.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
            raise _at(index, element, f"more than {MAX_VALUE_BYTES} bytes; pass large input through 'stdin'")
        checked.append(element)
    return checked


@attrs.define
class _Parse:
    """Mutable state while reading the elements left to right."""

    base: str
    stages: list[list[tuple[int, str]]] = attrs.field(factory=lambda: [[]])
    stdin_path: str | None = None
    stdout_path: str | None = None
    append: bool = False

    def pipe(self, index: int) -> None:
        if not self.stages[-1]:
            raise _at(index, PIPE, "a pipe needs a command on both sides")
        if self.stdout_path is not None:
            raise _at(index, PIPE, "'>' and '>>' belong to the last stage; move the redirection to the end")
        self.stages.append([])

    def redirect(self, index: int, operator: str, elements: Sequence[str]) -> None:
        if index + 1 >= len(elements) or is_operator_element(elements[index + 1]):
            raise _at(index, operator, "a redirection needs a file name as the next element")
        target, name = elements[index + 1], f"command[{index + 1}]"
        # Discarding output (or reading nothing) is common and harmless; no other path outside the base.
        target_path = DEV_NULL if target == DEV_NULL else None
        if operator == INPUT:
            if len(self.stages) > 1:
                raise _at(index, operator, "'<' feeds the first stage only; put it before the first '|'")
            if self.stdin_path is not None:
                raise _at(index, operator, "only one '<' is allowed")
            self.stdin_path = target_path or confine_file(
                target, base=self.base, relative_to=self.base, use=PathUse.READ, name=name
            )
        else:
            if self.stdout_path is not None:
                raise _at(index, operator, "only one '>' or '>>' is allowed")
            self.stdout_path = target_path or confine_file(
                target, base=self.base, relative_to=self.base, use=PathUse.WRITE, name=name
            )
            self.append = operator == APPEND


def parse_command(command: Sequence[str], *, base_path: str) -> CommandPlan:
    """Split ``command`` into pipeline stages and redirections; raise ``Rejected(argument="command")``.

    Redirections may stand anywhere in their stage (``< in cat`` as in a shell); their targets are
    resolved against ``base_path``, not against the call's ``directory``.
    """
    elements = _check_elements(command)
    state = _Parse(base=real_base(base_path))
    index = 0
    while index < len(elements):
        element = elements[index]
        problem = _operator_problem(element)
        if problem is not None:
            raise _at(index, element, problem)
        if element == PIPE:
            state.pipe(index)
        elif element in (INPUT, OUTPUT, APPEND):
            state.redirect(index, element, elements)
            index += 1  # the target
        else:
            state.stages[-1].append((index, element))
        index += 1
    if not state.stages[-1]:
        last = len(elements) - 1
        rule = "a pipe needs a command on both sides" if elements[last] == PIPE else "the command has no program"
        raise _at(last, elements[last], rule)
    if len(state.stages) > MAX_STAGES:
        raise Rejected(f"command: {len(state.stages)} pipeline stages, more than {MAX_STAGES}", argument="command")
    for stage in state.stages:
        index, program = stage[0]
        if PROGRAM_NAME.fullmatch(program) is None:
            raise _at(index, program, _PROGRAM_RULE)
    return CommandPlan(
        stages=tuple(Stage(tuple(element for _, element in stage)) for stage in state.stages),
        stdin_path=state.stdin_path,
        stdout_path=state.stdout_path,
        append=state.append,
    )
