"""shell_execute's policing: every stage of a parsed ``CommandPlan`` against the refused family and the policies.

Job (DESIGN.md §3 "The shell_execute tool"): apply the refused family (``programs.py``, which also decides
which program names the allowlist admits), the behaviour rule and the per-program policies (the ``policies``
package) to every stage of the plan ``argv.parse_command`` made, all before any process exists. The runner
executes the plan; nothing here spawns.

Invariants:
- Policies always apply, ``--allow-dangerous`` or not; it lifts only the refused family and the behaviour rule.
- Paths a policy names are confined like redirection targets (``confinement.confine_file``), relative to the
  stage's directory.
- Pure: no trio, no subprocess; the OS is touched only through os.path, os.access, shutil.which (on the
  commands' PATH) and the ELF reader.
- Every refusal is ``Rejected(message, argument="command")``; the message names the stage and argument, the
  rule, and what to do instead.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping

from trio_exec.argv import CommandPlan, Stage
from trio_exec.confinement import confine_file
from trio_exec.elfsyms import can_run_programs
from trio_exec.errors import Rejected
from trio_exec.paths import real_base
from trio_exec.policies import POLICIES, Context, PathUse, Refusal, check_arguments
from trio_exec.programs import PROGRAM_NAME, refused_as, stage_programs
from trio_exec.text import excerpt

__all__ = ["check_plan", "check_stage"]


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
    confine_file(value, base=base, relative_to=relative_to, use=use, name=what)


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
