"""awk: program text is lexed (``awk_program_problem``) and the options that read code or write files are
refused or confined."""

from __future__ import annotations

import re
from collections.abc import Iterator

from trio_exec.paths import PathUse
from trio_exec.policies.scanner import (
    OPTIONAL,
    PROGRAM_FILE,
    Arg,
    Context,
    Policy,
    Refusal,
    Rule,
    Scan,
    delimited_end,
    letters,
    path_rule,
    refuse,
    values,
)

_WORD = re.compile(r"\w+", re.ASCII)
_NUMBER = re.compile(r"[0-9.]+(?:[eE][+-]?[0-9]+)?")
_AWK_SYSTEM = re.compile(r"\bsystem(?:\s|\\\n|#[^\n]*\n)*\(")  # raw-text backstop for the lexer below
_AWK_OPS = ("**=", "||", "|&", "&&", ">>", "++", "--", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "%=", "^=", "**")
# After these words a '/' starts a regular expression; after any other name it divides.
_AWK_REGEX_AFTER = frozenset({"print", "printf", "return", "case", "in", "do", "else"})
# gawk handles these itself, so writing to them leaves nothing on disk.
_AWK_SPECIAL_OUTPUTS = frozenset({"/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2"})


# '(' right after these opens a statement's condition; after its ')' a statement starts, where '/' is a regex.
_AWK_HEADERS = frozenset({"if", "while", "for", "switch"})
# After these, awks disagree on '/': gawk divides (``x++ /2/ 1`` is 2.5), mawk starts a regex (``511``).
_AWK_AMBIGUOUS_NAMES = frozenset({"length", "getline"})
_AWK_NOT_OPERANDS = _AWK_REGEX_AFTER | _AWK_AMBIGUOUS_NAMES | _AWK_HEADERS


def _awk_tokens(text: str) -> Iterator[tuple[str, str]]:
    """(kind, text) tokens of an awk program: name, number, string, regex, ambiguous, newline, op.

    Strings and regular expressions are skipped as data. Whether '/' starts a regex or divides follows
    POSIX and gawk: a regex may start where an operand may (after an operator, '(', ',', ';', a brace,
    a newline, ``print``, ...), and after the ')' that closes an ``if``/``while``/``for``/``switch``
    condition, where a statement starts; after an operand it divides. After any other ')', after
    ``++``/``--`` and after ``length``/``getline`` awks disagree (gawk divides where mawk reads a regex),
    so a '/' there is read both ways: the text up to the next '/' on the line comes back as one
    ``ambiguous`` token, which the caller refuses if either reading could hide code.

    One loop over 50 lines on purpose: each branch reads and sets the state the next token depends on
    (``operand``, ``parens``, ``ambiguous``, ``name``), which helpers would have to pass back and forth.
    """
    pos, operand = 0, False  # operand: the previous token ends an operand, so '/' divides
    parens: list[bool] = []  # for each open '(': does it open a statement's condition?
    ambiguous, name = False, ""  # ambiguous: awks read a '/' here differently; name: the previous name token
    while pos < len(text):
        char = text[pos]
        if char in " \t\r" or (char == "\\" and text.startswith("\n", pos + 1)):  # blanks, line continuations
            pos += 2 if char == "\\" else 1
            continue
        if char == "/" and (ambiguous or not operand):
            # gawk ends a regex after a bracket expression ('/[/]/'); mawk at the first unescaped '/'
            end = delimited_end(text, pos + 1, "/", brackets=True)
            if delimited_end(text, pos + 1, "/", brackets=False) != end:
                yield "ambiguous-split", text[pos + 1 : end]
            elif ambiguous and "\\" in text[pos + 1 : end]:
                # A '\' parts the readings too: after ``x++`` mawk ends the regex ``/\/`` at its second
                # '/', where gawk reads an escaped '/'; what follows could then hide code from one reading.
                yield "ambiguous-split", text[pos + 1 : end]
        if char == "/" and ambiguous:
            if end < len(text) and text[end] == "/":  # both readings meet again after the closing '/'
                yield "ambiguous", text[pos + 1 : end]
                pos, name = end + 1, ""
                continue  # still ambiguous: right after it, one reading has an operand, the other not
            # No closing '/': a regex reading fails to compile (nothing runs), so read it as division.
            operand = True
        ambiguous, was = False, name
        name = ""
        if char == "#":
            while pos < len(text) and text[pos] != "\n":
                pos += 1
        elif char == "\n":
            yield "newline", char
            pos, operand = pos + 1, False
        elif char == '"' or (char == "/" and not operand):
            end = delimited_end(text, pos + 1, char, brackets=char == "/")
            yield ("string" if char == '"' else "regex"), text[pos + 1 : end]
            pos, operand = end + 1 if end < len(text) and text[end] == char else end, True
        elif char.isalpha() or char == "_":
            match = _WORD.match(text, pos)
            name = match.group() if match else char
            yield "name", name
            pos, operand = pos + len(name), name not in _AWK_REGEX_AFTER
            ambiguous = name in _AWK_AMBIGUOUS_NAMES
        elif char.isdigit() or char == ".":
            match = _NUMBER.match(text, pos)
            number = match.group() if match else char
            yield "number", number
            pos, operand = pos + len(number), True
        else:
            op = next((op for op in _AWK_OPS if text.startswith(op, pos)), char)
            yield "op", op
            if op == "(":
                parens.append(was in _AWK_HEADERS)
            header = op == ")" and bool(parens) and parens.pop()
            pos, operand = pos + len(op), op in (")", "]", "++", "--") and not header
            ambiguous = op in (")", "++", "--")


def awk_program_problem(text: str, ctx: Context) -> str | None:
    """Why this awk program text is refused, or None.

    Refused: ``system``, command pipes (``|``, ``|&``, ``cmd | getline``), ``@include``/``@load`` and gawk's
    indirect calls ``@f()`` (which can call system), and ``print > file`` unless the file is a string
    literal that is allowed as an output file (checked like ``sort -o``).
    """
    if _AWK_SYSTEM.search(text):
        return "calls system(), which runs a shell command"
    tokens = list(_awk_tokens(text))
    for number, (kind, value) in enumerate(tokens):
        if kind.startswith("ambiguous"):
            problem = _awk_ambiguous(value, ctx, split=kind == "ambiguous-split")
            if problem is not None:
                return problem
        if (kind, value) == ("name", "system"):
            return "uses system, which runs a shell command"
        if (kind, value) == ("op", "\\"):  # not a line continuation: awks disagree on what it does
            return "has a '\\' outside a string or regex; write it inside a quoted string"
        if kind == "op" and value in ("|", "|&"):
            return f"uses '{value}', which runs a command (print | cmd, cmd | getline, coprocesses)"
        problem = _awk_directive(tokens[number + 1 : number + 2]) if (kind, value) == ("op", "@") else None
        if problem is not None:
            return problem
    for number in _print_redirections(tokens):
        problem = _awk_output(tokens[number + 1 : number + 3], ctx)
        if problem is not None:
            return problem
    return None


def _awk_ambiguous(text: str, ctx: Context, *, split: bool) -> str | None:
    """A '/' that one awk reads as a regex and another as division: refused if the readings can differ.

    Read as division, the text up to the next '/' is code: it must pass on its own. Read as a regex,
    it is data: a '#', '"' or '\\' in it, or a '/' inside brackets (``split``), would make the division
    reading skip or join text that the regex reading runs.
    """
    hint = "write the regex as $0 ~ /re/, or put the divisor in parentheses: x / (y)"
    if split or any(char in text for char in '#"\\'):
        return f"has a '/' that awks read differently (regex or division) before a '#', '\"', '\\' or '[/]'; {hint}"
    tokens = [t for t in _awk_tokens(text) if t[0] != "newline"]
    last = tokens[-1] if tokens else ("op", "")
    closes = last[0] == "number" or last == ("op", "]") or (last[0] == "name" and last[1] not in _AWK_NOT_OPERANDS)
    if not closes:  # read as code, the next '/' would not divide but open a regex: the readings part
        return f"has a '/' that awks read differently (regex or division), then text that ends in an operator; {hint}"
    problem = awk_program_problem(text, ctx)
    return None if problem is None else f"{problem} (in text after a '/' that some awks read as division; {hint})"


def _print_redirections(tokens: list[tuple[str, str]]) -> Iterator[int]:
    """Positions of the '>'/'>>' tokens that redirect print/printf output.

    awk reads '>' at the top level of a print statement as a redirection (``print $1 > 5`` writes the
    file "5"); inside parentheses it compares. A print statement ends at ';', a brace, or a newline that
    does not follow a comma.
    """
    in_print, depth, previous = False, 0, ("newline", "\n")
    for number, token in enumerate(tokens):
        kind, value = token
        if token in (("name", "print"), ("name", "printf")):
            in_print, depth = True, 0
        elif in_print and kind == "op" and value in ("(", "["):
            depth += 1
        elif in_print and kind == "op" and value in (")", "]"):
            depth = max(depth - 1, 0)
        elif in_print and depth == 0 and token in (("op", ">"), ("op", ">>")):
            yield number
        elif token in (("op", ";"), ("op", "{"), ("op", "}")) or (kind == "newline" and previous != ("op", ",")):
            in_print = False
        previous = token


def _awk_directive(following: list[tuple[str, str]]) -> str | None:
    if following in ([("name", "namespace")], []) or following[0][0] == "regex":
        return None  # @namespace and gawk's typed regex constants @/re/
    if following[0] in (("name", "include"), ("name", "load"), ("name", "nsinclude")):
        return f"uses @{following[0][1]}, which reads code from a file or loads a compiled extension"
    return "uses '@' (gawk's indirect function call can call system)"


def _awk_output(following: list[tuple[str, str]], ctx: Context) -> str | None:
    """print/printf > target: allowed only for a plain string literal that names an allowed output file."""
    ends = following[1:] in ([], [("newline", "\n")], [("op", ";")], [("op", "}")])
    if not following or following[0][0] != "string" or not ends or "\\" in following[0][1]:
        return (
            "redirects print output to a computed file name; write to a quoted relative file name, "
            "or use shell_execute's '>' redirection"
        )
    target = following[0][1]
    if target not in _AWK_SPECIAL_OUTPUTS:
        ctx.confine(target, PathUse.WRITE, "awk print >")
    return None


def _awk_finish(scan: Scan, ctx: Context) -> None:
    if scan.values("e", "source") or not scan.operands:
        return  # -e/--source texts were checked as option values
    index, program = scan.operands[0]
    problem = awk_program_problem(program, ctx)
    if problem is not None:
        raise Refusal(index, f"the awk program {problem}")


_AWK_PROGRAM = Rule(Arg.REQUIRED, check=awk_program_problem)
AWK = Policy(
    long={
        "file": refuse(PROGRAM_FILE),
        "exec": refuse(PROGRAM_FILE),
        "include": refuse("reads awk code from a file"),
        "load": refuse("loads a compiled extension (native code)"),
        "debug": refuse("starts gawk's debugger, which evaluates commands read from stdin", Arg.OPTIONAL),
        "dump-variables": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "pretty-print": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "profile": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "source": _AWK_PROGRAM,
        "lint": OPTIONAL,
        **values("assign field-separator random sprintf"),
    },
    short={
        "f": refuse(PROGRAM_FILE),
        "E": refuse(PROGRAM_FILE),
        "i": refuse("reads awk code from a file"),
        "l": refuse("loads a compiled extension (native code)"),
        "D": refuse("starts gawk's debugger, which evaluates commands read from stdin", Arg.OPTIONAL),
        "d": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "o": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "p": path_rule(PathUse.WRITE, Arg.OPTIONAL),
        "e": _AWK_PROGRAM,
        "L": OPTIONAL,
        "W": Rule(Arg.REQUIRED, as_long=True),
        **letters("Fv"),
    },
    words={"-safe": Rule(), "-version": Rule()},  # one-true-awk spells these with one dash
    finish=_awk_finish,
)
