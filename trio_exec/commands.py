"""shell_execute (the command-allowlist mode): parse the agent's argv array into a pipeline plan and police it.

Job (DESIGN.md §3 "The shell_execute tool"): turn ``command`` into a ``CommandPlan`` (stages joined by pipes,
at most one ``<`` input file and one ``>``/``>>`` output file), confine ``directory`` and redirection targets to
the base path, and apply the refused family (``programs.py``, which also decides which program names the
allowlist admits) and the per-program policies (the ``policies`` package) to every stage, all before any process
exists. The runner executes the plan; nothing here spawns.

Invariants:
- No shell, ever. Only the discrete elements ``|``, ``<``, ``>``, ``>>`` are syntax. Every other element reaches
  execve unchanged: ``"a;b"``, ``"x|"``, ``""`` and newlines are data. Discrete ``;``, ``&&``, ``||``, ``&`` and
  the other shell operators (``2>``, ``|&``, ``<<``, ...) are refused, never passed on as data.
- Redirection targets are resolved against the base path, never against the client's ``directory``; a target
  that leaves the base (absolute elsewhere, ``..``, a symlinked directory) or that is itself a symlink is
  refused before anything is opened or truncated. The returned path has no symlink in its directory part.
- Pure: no trio, no subprocess; the OS is touched only through os.path, os.lstat and os.path.realpath.
- Every refusal is ``Rejected(message, argument="command" | "directory")``; the message names the element
  (``command[3]``) or the stage and argument, the rule, and what to do instead.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from collections.abc import Mapping, Sequence

import attrs

from trio_exec.elfsyms import can_run_programs
from trio_exec.errors import Rejected
from trio_exec.paths import (
    PathPolicy,
    final_component_problem,
    is_within,
    protected_problem,
    real_base,
    special_file_kind,
)
from trio_exec.policies import POLICIES, Context, PathUse, Refusal, check_arguments
from trio_exec.programs import PROGRAM_NAME, refused_as, stage_programs
from trio_exec.text import excerpt
from trio_exec.validation import MAX_ARGV, MAX_VALUE_BYTES, Kind, validate_value

__all__ = [
    "MAX_STAGES",
    "CommandPlan",
    "Stage",
    "check_plan",
    "check_stage",
    "confine_directory",
    "confine_target",
    "is_operator_element",
    "parse_command",
]

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
            self.stdin_path = target_path or _confine_file(
                target, base=self.base, relative_to=self.base, use=PathUse.READ, name=name
            )
        else:
            if self.stdout_path is not None:
                raise _at(index, operator, "only one '>' or '>>' is allowed")
            self.stdout_path = target_path or _confine_file(
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


# --------------------------------------------------------------------------- confinement


def _refused_path(name: str, value: str, rule: str, base: str) -> Rejected:
    return Rejected(
        f"argument {name!r} ({excerpt(value)}): {rule}; give a path inside {base} such as 'subdir/file.txt'",
        argument="command",
    )


def _confine_file(value: str, *, base: str, relative_to: str, use: PathUse, name: str) -> str:
    """The absolute path ``value`` names (relative to ``relative_to``) if ``use`` of it is allowed.

    Syntax checks come from validation (NUL, controls, '..', '~', leading '-', encodings, look-alikes);
    containment is checked on the fully resolved path and on the directory part separately, so a final
    symlink cannot hide an outside parent. For READ/WRITE the final component must not be a symlink and
    must be a regular file (READ: existing; WRITE: existing or new in an existing directory). How this
    differs from the template values' confiner (``validation._containment``), and why: ``paths.py``.
    """
    try:
        validate_value(name, Kind.PATH, value, paths=PathPolicy(validate_paths=False))
    except Rejected as exc:
        raise Rejected(exc.message, argument="command") from None
    candidate = os.path.normpath(os.path.join(relative_to, value))  # join keeps an absolute value as is
    resolved = _resolve(candidate, name, value, base)
    if not is_within(resolved, base):
        raise _refused_path(name, value, f"it resolves outside the base path {base} (symlinks are followed)", base)
    if use is PathUse.INSIDE or use is PathUse.OUTPUT:
        problem = _special_problem(resolved)
        if problem is None and use is PathUse.OUTPUT:
            problem = protected_problem(resolved, base)
        if problem is not None:
            raise _refused_path(name, value, problem, base)
        return resolved
    parent, leaf = os.path.split(candidate)
    real_parent = _resolve(parent, name, value, base)
    if value.endswith("/") or candidate == base or not is_within(real_parent, base):
        raise _refused_path(name, value, "it must name a file inside the base path", base)
    if not os.path.isdir(real_parent):
        raise _refused_path(name, value, "its directory does not exist", base)
    final = os.path.join(real_parent, leaf)
    problem = final_component_problem(final, use)
    if problem is None and use is PathUse.WRITE:
        problem = protected_problem(final, base)
    if problem is not None:
        raise _refused_path(name, value, problem, base)
    return final


def _resolve(path: str, name: str, value: str, base: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError as exc:  # e.g. EACCES reading /proc/1/root: what cannot be resolved cannot be confined
        raise _refused_path(
            name, value, f"it cannot be resolved ({exc.strerror or type(exc).__name__})", base
        ) from None


def _special_problem(resolved: str) -> str | None:
    """Why a path a program reads or enters may not be used: a FIFO, socket or device would hang it."""
    if special_file_kind(resolved) is None:
        return None
    return "it is a FIFO, socket or device, not a regular file or directory (it could hang the command)"


def confine_target(target: str, base_path: str, *, reading: bool = False) -> str:
    """The absolute path of a redirection target, resolved against ``base_path`` (never the client's directory).

    Refused: paths outside the base (absolute elsewhere, ``..``, symlinked directories), a final component
    that is a symlink at all (the runner opens with O_NOFOLLOW), non-regular files, NUL and control
    characters, and (for writing) files inside ``.git`` or git's own configuration. ``reading`` (``<``)
    also requires the file to exist. Raises ``Rejected(argument="command")``.
    """
    base = real_base(base_path)
    use = PathUse.READ if reading else PathUse.WRITE
    return _confine_file(target, base=base, relative_to=base, use=use, name="redirection target")


def confine_directory(directory: str | None, base_path: str) -> str:
    """The real path of the ``directory`` argument (default: the base path); an existing directory inside it."""
    base = real_base(base_path)
    if directory is None:
        return base
    validate_value("directory", Kind.PATH, directory, paths=PathPolicy(base_path=base))
    resolved = os.path.realpath(os.path.join(base, directory))
    if not os.path.isdir(resolved):
        raise Rejected(
            f"argument 'directory' ({excerpt(directory)}): it is not an existing directory; "
            f"give a directory inside {base}, or leave 'directory' out to use the base path",
            argument="directory",
        )
    return resolved


# --------------------------------------------------------------------------- stage policies


def check_stage(
    stage: Stage,
    *,
    base_path: str,
    allow_dangerous: bool,
    directory: str | None = None,
    program_path: str | None = None,
    search_path: str | None = None,
) -> None:
    """Refuse the stage if its program is in the refused family (unless ``allow_dangerous``) or its arguments
    break the program's policy. Policies always apply, ``allow_dangerous`` or not.

    ``directory`` is the stage's confined working directory (default: the base path): relative paths in
    options such as ``sort -o`` are resolved against it. ``program_path`` is the pinned binary; when given,
    the policies of its symlink target apply too, and with ``search_path`` (the commands' PATH) the
    behaviour rule: a program without a policy whose binary can run programs may not be given a word
    that names one (``_check_program_words``).
    """
    base = real_base(base_path)
    program = stage.argv[0]
    names = stage_programs(program, program_path)
    refused = refused_as(program, program_path)
    if refused is not None and not allow_dangerous:
        raise Rejected(
            f"the program {program!r} is refused: {refused} is a shell, interpreter, wrapper, editor, pager or "
            "debugger, and any argument could make it run code; use a program with a narrower job",
            argument="command",
        )
    cwd = base if directory is None else os.path.realpath(directory)
    unpoliced = not allow_dangerous and not any(name in POLICIES for name in names)
    if unpoliced and program_path is not None and search_path is not None and can_run_programs(program_path):
        _check_program_words(stage, search_path, cwd)
    confine = functools.partial(_confine_option, base=base, relative_to=cwd)
    for name in names:
        ctx = Context(program=name, directory=cwd, confine=confine)
        try:
            check_arguments(name, stage.argv[1:], ctx)
        except Refusal as refusal:
            element = stage.argv[refusal.index]
            raise Rejected(
                f"{program} argument {refusal.index} ({excerpt(element)}): {refusal.reason} "
                f"(the {name} policy; see SECURITY.md)",
                argument="command",
            ) from None


def _check_program_words(stage: Stage, search_path: str, cwd: str) -> None:
    """Refuse a word naming a program on PATH or an executable file: the word's first space-separated token,
    or for an option word the value after its first '=' (``install --strip-program=sh``)."""
    for index, word in enumerate(stage.argv[1:], 1):
        value = word.partition("=")[2] if word.startswith("-") else word
        token = next(iter(value.split()), "")
        if "/" in token:
            path = os.path.join(cwd, token)
            named = os.path.isfile(path) and os.access(path, os.X_OK)
        else:
            named = PROGRAM_NAME.fullmatch(token) is not None and shutil.which(token, path=search_path) is not None
        if named:
            raise Rejected(
                f"{stage.argv[0]} can run other programs and argument {index} ({excerpt(word)}) names one "
                f"({token}); refused: a program without a policy here may not be handed a program to run "
                "(see SECURITY.md, Refused family)",
                argument="command",
            )


def _confine_option(value: str, use: PathUse, what: str, *, base: str, relative_to: str) -> None:
    _confine_file(value, base=base, relative_to=relative_to, use=use, name=what)


def check_plan(
    plan: CommandPlan,
    *,
    base_path: str,
    allow_dangerous: bool,
    directory: str | None = None,
    program_paths: Mapping[str, str] | None = None,
    search_path: str | None = None,
) -> None:
    """``check_stage`` for every stage; messages of a multi-stage plan say which stage broke the rule."""
    for number, stage in enumerate(plan.stages, 1):
        path = None if program_paths is None else program_paths.get(stage.argv[0])
        try:
            check_stage(
                stage,
                base_path=base_path,
                allow_dangerous=allow_dangerous,
                directory=directory,
                program_path=path,
                search_path=search_path,
            )
        except Rejected as exc:
            if len(plan.stages) == 1:
                raise
            raise Rejected(f"stage {number} of {len(plan.stages)}: {exc.message}", argument="command") from None
