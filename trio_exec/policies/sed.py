"""sed (only with --allow-dangerous): the script is read command by command (``sed_script_problem``), and
the e and w commands, s///e, s///w, -f and -i are refused."""

from __future__ import annotations

import re

from trio_exec.policies.scanner import (
    PROGRAM_FILE,
    Arg,
    Context,
    Policy,
    Refusal,
    Scan,
    delimited_end,
    letters,
    refuse,
    values,
)

_SED_SIMPLE = frozenset("=dDgGhHnNpPxzF{}")


def _sed_delimited(script: str, pos: int, delimiter: str, *, regex: bool) -> int:
    """Index after the closing ``delimiter`` of a regex/replacement starting at ``pos``; -1 if unterminated."""
    end = delimited_end(script, pos, delimiter, brackets=regex)
    return end + 1 if end < len(script) and script[end] == delimiter else -1


_SED_NUMERIC_ADDRESS = re.compile(r"[0-9]+(?:~[0-9]*)?|\$|[+~][0-9]*")


def _sed_address(script: str, pos: int) -> int:
    """Skip one address (line, $, /re/, \\cREc, first~step) with its I/M flags; -1 if unterminated."""
    if pos < len(script) and script[pos] in "/\\":
        start = pos + 2 if script[pos] == "\\" else pos + 1
        pos = _sed_delimited(script, start, script[start - 1], regex=True) if start <= len(script) else -1
        while 0 <= pos < len(script) and script[pos] in "IM":
            pos += 1
        return pos
    match = _SED_NUMERIC_ADDRESS.match(script, pos)
    return match.end() if match else pos


def _skip(script: str, pos: int, chars: str) -> int:
    while pos < len(script) and script[pos] in chars:
        pos += 1
    return pos


def _sed_command_start(script: str, pos: int) -> int:
    """Skip the addresses and '!' before a command; -1 if an address is unterminated."""
    pos = _sed_address(script, pos)
    if pos >= 0:
        pos = _skip(script, pos, " \t")
        if script.startswith(",", pos):
            pos = _sed_address(script, _skip(script, pos + 1, " \t"))
    return pos if pos < 0 else _skip(script, pos, "! \t")


def _sed_to(script: str, pos: int, stops: str) -> int:
    """Index of the first of ``stops`` (escapes skipped) or the end."""
    while pos < len(script) and script[pos] not in stops:
        pos += 2 if script[pos] == "\\" else 1
    return min(pos, len(script))


def sed_script_problem(script: str) -> str | None:
    """Why this GNU sed script is refused (the e and w commands, s///e and s///w), or None."""
    pos = 0
    while pos < len(script):
        if script[pos] in " \t\n;":
            pos += 1
            continue
        if script[pos] == "#":
            pos = _sed_to(script, pos, "\n")
            continue
        pos = _sed_command_start(script, pos)
        if pos < 0 or pos >= len(script):
            return "cannot be read safely (an unterminated address or a missing command)"
        command = script[pos]
        pos += 1
        if command in _SED_SIMPLE:
            continue
        if command == "e":
            return "uses the e command, which runs a shell command"
        if command in "wW":
            return f"uses the {command} command, which writes a file"
        if command in "aicrR":  # text or a file name up to the end of the line
            pos = _sed_to(script, pos, "\n")
        elif command in ":btTv":  # a label (or version): blanks, then up to a blank, ';' or newline; no escapes
            pos = _skip(script, pos, " \t")
            pos = next((end for end in range(pos, len(script)) if script[end] in " \t;\n"), len(script))
        elif command in "lLqQ":
            pos = _skip(script, pos, " \t0123456789")
        elif command in "sy":
            pos, problem = _sed_substitution(script, pos, command)
            if problem is not None:
                return problem
        else:
            return f"uses {command!r}, which is not a sed command this server can check"
    return None


def _sed_substitution(script: str, pos: int, command: str) -> tuple[int, str | None]:
    unreadable = f"has an {command} command that cannot be read safely"
    if pos >= len(script) or script[pos] in "\n\\":
        return pos, unreadable
    delimiter = script[pos]
    pos = _sed_delimited(script, pos + 1, delimiter, regex=command == "s")  # y's two parts are plain lists
    pos = _sed_delimited(script, pos, delimiter, regex=False) if pos >= 0 else -1
    if pos < 0:
        return pos, unreadable
    while command == "s" and pos < len(script) and script[pos] in "gpiImMew0123456789":
        if script[pos] == "e":
            return pos, "uses the s///e flag, which runs the pattern space as a shell command"
        if script[pos] == "w":
            return pos, "uses the s///w flag, which writes a file"
        pos += 1
    return pos, None


def _sed_finish(scan: Scan, _ctx: Context) -> None:
    expressions = scan.values("e", "expression")
    if not expressions and scan.operands:
        expressions = [scan.operands[0]]
    if expressions:
        problem = sed_script_problem("\n".join(text for _, text in expressions))  # GNU sed joins -e's so
        if problem is not None:
            raise Refusal(expressions[0][0], f"the sed script {problem}")


SED = Policy(
    long={
        "file": refuse(PROGRAM_FILE),
        "in-place": refuse("edits files in place; write the output with '>' instead", Arg.OPTIONAL),
        **values("expression line-length"),
    },
    short={
        "f": refuse(PROGRAM_FILE),
        "i": refuse("edits files in place; write the output with '>' instead", Arg.OPTIONAL),
        **letters("el"),
    },
    finish=_sed_finish,
)
