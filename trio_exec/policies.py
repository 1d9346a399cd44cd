"""Per-program policies for ``shell_execute``: each program's option grammar and the exec vectors it refuses.

Job: given a stage's canonical program name (``commands.canonical_program``) and its arguments, refuse the
arguments that make an allowlisted program run another program, load code, or write outside the base path
(DESIGN.md §3; each rule and its attack are listed in SECURITY.md, "shell_execute: per-program policies").

Invariants:
- Pure: no I/O here. Questions about paths go through ``Context.confine`` (implemented in ``commands.py``),
  which raises ``Rejected`` itself; every other refusal is a ``Refusal(index, reason)`` that
  ``commands.check_stage`` turns into ``Rejected``.
- A policy is a small table: long options (GNU unique-prefix abbreviations understood, ``--opt=value`` and
  ``--opt value``), short options (clusters, attached and separate values), whole single-dash words, and a
  ``finish`` hook for operands (awk/sed program text, make assignments, git subcommands).
- Fail closed where the grammar is uncertain: an abbreviation that could name a guarded option gets that
  option's rule; an unknown option is assumed to take no value, so whatever follows it is still checked.
  Mistakes therefore over-block (a refusal with a reason), never let an exec vector through.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

import attrs

__all__ = ["POLICIES", "Context", "PathUse", "Refusal", "check_arguments"]


class Refusal(Exception):
    """An argument breaks a policy; ``index`` counts the stage's argv elements (0 is the program)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


class PathUse(enum.Enum):
    """What a program does with a path it receives in an option value or an operand."""

    INSIDE = "inside"  # reads or changes into it: must resolve inside the base path
    READ = "read"  # opens an existing regular file (the '<' redirection)
    WRITE = "write"  # creates or truncates it: inside, not a symlink, not git's configuration
    OUTPUT = "output"  # a directory it creates files in: inside, not git's configuration


@attrs.frozen
class Context:
    """What a policy may know about the call: the stage's working directory and a path confiner.

    ``confine(value, use, what)`` resolves ``value`` relative to ``directory`` and raises ``Rejected`` naming
    ``what`` (e.g. ``"sort -o"``) when the path is not allowed for ``use``.
    """

    program: str  # the canonical program name, for messages
    directory: str
    confine: Callable[[str, PathUse, str], None]


class Arg(enum.Enum):
    NONE = "none"
    REQUIRED = "required"  # attached (-ofile, --out=file) or the next element
    OPTIONAL = "optional"  # attached only (--color=auto, gawk -pfile)


ValueCheck = Callable[[str, Context], "str | None"]  # a reason to refuse the value, or None


@attrs.frozen
class Rule:
    """What one option does. An option without a rule is harmless and takes no value."""

    arg: Arg = Arg.NONE
    refuse: str | None = None  # refused whenever present, for this reason
    refuse_value: str | None = None  # refused when given a value (git --exec-path=DIR)
    path: PathUse | None = None  # its value is a path, confined to the base path
    check: ValueCheck | None = None  # its value is checked (awk program text, tar archive names)
    as_long: bool = False  # awk -W: the value names a long option

    @property
    def guarded(self) -> bool:
        return any(x is not None for x in (self.refuse, self.refuse_value, self.path, self.check))


FLAG = Rule()
VALUE = Rule(Arg.REQUIRED)
OPTIONAL = Rule(Arg.OPTIONAL)


def _refuse(reason: str, arg: Arg = Arg.REQUIRED) -> Rule:
    return Rule(arg, refuse=reason)


def _path(use: PathUse, arg: Arg = Arg.REQUIRED) -> Rule:
    return Rule(arg, path=use)


def _values(names: str) -> dict[str, Rule]:
    """Harmless long options that take a value (space-separated); listed so the value is not read as an option."""
    return dict.fromkeys(names.split(), VALUE)


def _letters(letters: str) -> dict[str, Rule]:
    """Harmless short options that take a value."""
    return dict.fromkeys(letters, VALUE)


@attrs.frozen
class Seen:
    name: str  # a letter or a long name without dashes
    value: str | None
    index: int


@attrs.frozen
class Scan:
    """The options and operands of one stage, as the program will read them."""

    options: tuple[Seen, ...]
    operands: tuple[tuple[int, str], ...]

    def values(self, *names: str) -> list[tuple[int, str]]:
        return [(o.index, o.value) for o in self.options if o.name in names and o.value is not None]


Finish = Callable[[Scan, Context], None]


@attrs.frozen
class Policy:
    """One program's option grammar; calling it checks a stage's arguments (argv[1:])."""

    long: Mapping[str, Rule] = attrs.field(factory=dict)
    short: Mapping[str, Rule] = attrs.field(factory=dict)
    words: Mapping[str, Rule] = attrs.field(factory=dict)  # whole single-dash words (awk -safe)
    permute: bool = True  # GNU getopt: options may follow operands
    end_markers: frozenset[str] = frozenset({"--"})
    old_style: bool = False  # tar: a first argument without '-' is a cluster of option letters
    finish: Finish | None = None

    def __call__(self, args: Sequence[str], ctx: Context) -> None:
        self.scan(args, ctx)

    def scan(self, args: Sequence[str], ctx: Context, offset: int = 1) -> Scan:
        items = [(offset + i, arg) for i, arg in enumerate(args)]
        if self.old_style:
            items = _expand_old_style(items, self.short)
        scan = _Scanner(self, ctx, items).run()
        if self.finish is not None:
            self.finish(scan, ctx)
        return scan


def resolve_long(table: Mapping[str, Rule], name: str) -> tuple[str, Rule] | None:
    """The option ``--name`` means: exact, else a unique or guarded prefix match (getopt_long abbreviations).

    When the prefix is ambiguous and any candidate is guarded, the guarded rule wins (refusals first): the
    program would either take that option or refuse the ambiguity, so checking it is never wrong.
    """
    lowered = name.lower()  # some parsers fold case; folding here can only refuse more
    if lowered in table:
        return lowered, table[lowered]
    candidates = [option for option in sorted(table) if lowered and option.startswith(lowered)]
    refusing = [option for option in candidates if table[option].refuse is not None]
    guarded = refusing or [option for option in candidates if table[option].guarded]
    if guarded:
        return guarded[0], table[guarded[0]]
    if len(candidates) == 1:
        return candidates[0], table[candidates[0]]
    return None  # unknown, or ambiguous among harmless options (the program refuses those itself)


def _expand_old_style(items: list[tuple[int, str]], short: Mapping[str, Rule]) -> list[tuple[int, str]]:
    """tar's old style: 'cIf helper out.tar' is '-c -I helper -f out.tar' (values taken in order)."""
    if not items or items[0][1].startswith("-"):
        return items
    index, cluster = items[0]
    rest = items[1:]
    expanded: list[tuple[int, str]] = []
    for letter in cluster:
        expanded.append((index, "-" + letter))
        rule = short.get(letter)
        if rule is not None and rule.arg is Arg.REQUIRED and rest:
            expanded.append(rest.pop(0))
    return expanded + rest


class _Scanner:
    """Walks one stage's arguments like the program's option parser and applies the rules."""

    def __init__(self, policy: Policy, ctx: Context, items: list[tuple[int, str]]) -> None:
        self.policy, self.ctx, self.items = policy, ctx, items
        self.pos = 0
        self.options: list[Seen] = []
        self.operands: list[tuple[int, str]] = []

    def run(self) -> Scan:
        only_operands = False
        while self.pos < len(self.items):
            index, element = self.items[self.pos]
            self.pos += 1
            if only_operands:
                self.operands.append((index, element))
            elif element in self.policy.end_markers:
                only_operands = True
            elif element.startswith("--"):
                self._long(element[2:], index)
            elif element in self.policy.words:
                rule = self.policy.words[element]
                value = self._take() if rule.arg is Arg.REQUIRED else None
                self._apply(rule, element, element, value, index)
            elif element.startswith("-") and element != "-":
                self._short(element, index)
            else:
                self.operands.append((index, element))
                only_operands = not self.policy.permute
        return Scan(tuple(self.options), tuple(self.operands))

    def _take(self) -> str | None:
        """The next element, as the separate value of an option."""
        if self.pos >= len(self.items):
            return None
        self.pos += 1
        return self.items[self.pos - 1][1]

    def _long(self, body: str, index: int, *, may_take: bool = True) -> None:
        name, has_value, attached = body.partition("=")
        value = attached if has_value else None
        found = resolve_long(self.policy.long, name)
        if found is None:
            self.options.append(Seen(name.lower(), value, index))
            return
        option, rule = found
        if value is None and rule.arg is Arg.REQUIRED and may_take:
            value = self._take()
        spelled = f"--{option}" if option == name.lower() else f"--{name} (an abbreviation of --{option})"
        self._apply(rule, option, spelled, value, index)

    def _short(self, element: str, index: int) -> None:
        for pos in range(1, len(element)):
            letter = element[pos]
            rule = self.policy.short.get(letter, FLAG)
            if rule.arg is Arg.NONE:
                self._apply(rule, letter, f"-{letter}", None, index)
                continue
            rest = element[pos + 1 :]
            value = rest if rest else (self._take() if rule.arg is Arg.REQUIRED else None)
            if rule.as_long and value is not None:
                # awk -W name[=value]; mawk also takes several, separated by commas
                *firsts, last = value.split(",")
                for piece in firsts:
                    self._long(piece, index, may_take=False)
                self._long(last, index)
            else:
                self._apply(rule, letter, f"-{letter}", value, index)
            return

    def _apply(self, rule: Rule, name: str, spelled: str, value: str | None, index: int) -> None:
        if rule.refuse is not None:
            raise Refusal(index, f"{spelled} {rule.refuse}")
        if value is not None and rule.refuse_value is not None:
            raise Refusal(index, f"{spelled} with a value {rule.refuse_value}")
        if value is not None and rule.check is not None:
            problem = rule.check(value, self.ctx)
            if problem is not None:
                raise Refusal(index, f"the value of {spelled} {problem}")
        if value is not None and rule.path is not None:
            self.ctx.confine(value, rule.path, f"{self.ctx.program} {spelled}")
        self.options.append(Seen(name, value, index))


# --------------------------------------------------------------------------- shared reasons

_RUNS_VALUE = "runs the program or shell command given as its value"
_READS_NAMES = "reads the names of the files to process from a file, past any check of the arguments"
_PROGRAM_FILE = "reads the program from a file, which is not checked like program text"


def _files0_from(args: Sequence[str]) -> None:
    """Every program: refuse --files0-from and abbreviations down to --files0 (GNU du, wc, sort)."""
    for index, element in enumerate(args, 1):
        name = element[2:].partition("=")[0].lower()
        if element.startswith("--") and len(name) >= len("files0") and "files0-from".startswith(name):
            raise Refusal(index, f"--files0-from {_READS_NAMES}; give the file names as arguments")


# --------------------------------------------------------------------------- awk

_WORD = re.compile(r"\w+", re.ASCII)
_NUMBER = re.compile(r"[0-9.]+(?:[eE][+-]?[0-9]+)?")
_AWK_SYSTEM = re.compile(r"\bsystem(?:\s|\\\n|#[^\n]*\n)*\(")  # raw-text backstop for the lexer below
_AWK_OPS = ("**=", "||", "|&", "&&", ">>", "++", "--", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "%=", "^=", "**")
# After these words a '/' starts a regular expression; after any other name it divides.
_AWK_REGEX_AFTER = frozenset({"print", "printf", "return", "case", "in", "do", "else"})
# gawk handles these itself, so writing to them leaves nothing on disk.
_AWK_SPECIAL_OUTPUTS = frozenset({"/dev/stdout", "/dev/stderr", "/dev/fd/1", "/dev/fd/2"})


def _delimited_end(text: str, pos: int, delimiter: str, *, brackets: bool) -> int:
    """Index of the ``delimiter`` ending a string or regex that starts at ``pos``, else of the newline or end.

    With ``brackets`` (regexes), a delimiter inside a bracket expression is literal, as gawk, mawk and GNU
    sed read ``/[/]/``: ']' right after '[' or '[^' is literal, '[:' opens a class name (gawk's rule).
    A wrong guess here could hide code behind a '#' comment, so this follows the programs exactly.
    """
    depth, opened = 0, -1
    while pos < len(text) and text[pos] != "\n":
        char = text[pos]
        if char == "\\":
            pos += 2
            continue
        if brackets and char == "[" and (depth == 0 or text.startswith(":", pos + 1)):
            depth, opened = depth + 1, pos if depth == 0 else opened
        elif brackets and char == "]" and depth > 0 and pos != opened + 1 and text[opened + 1 : pos] != "^":
            depth -= 1
        elif char == delimiter and depth == 0:
            return pos
        pos += 1
    return min(pos, len(text))


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
            end = _delimited_end(text, pos + 1, "/", brackets=True)
            if _delimited_end(text, pos + 1, "/", brackets=False) != end:
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
            end = _delimited_end(text, pos + 1, char, brackets=char == "/")
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
_AWK = Policy(
    long={
        "file": _refuse(_PROGRAM_FILE),
        "exec": _refuse(_PROGRAM_FILE),
        "include": _refuse("reads awk code from a file"),
        "load": _refuse("loads a compiled extension (native code)"),
        "debug": _refuse("starts gawk's debugger, which evaluates commands read from stdin", Arg.OPTIONAL),
        "dump-variables": _path(PathUse.WRITE, Arg.OPTIONAL),
        "pretty-print": _path(PathUse.WRITE, Arg.OPTIONAL),
        "profile": _path(PathUse.WRITE, Arg.OPTIONAL),
        "source": _AWK_PROGRAM,
        "lint": OPTIONAL,
        **_values("assign field-separator random sprintf"),
    },
    short={
        "f": _refuse(_PROGRAM_FILE),
        "E": _refuse(_PROGRAM_FILE),
        "i": _refuse("reads awk code from a file"),
        "l": _refuse("loads a compiled extension (native code)"),
        "D": _refuse("starts gawk's debugger, which evaluates commands read from stdin", Arg.OPTIONAL),
        "d": _path(PathUse.WRITE, Arg.OPTIONAL),
        "o": _path(PathUse.WRITE, Arg.OPTIONAL),
        "p": _path(PathUse.WRITE, Arg.OPTIONAL),
        "e": _AWK_PROGRAM,
        "L": OPTIONAL,
        "W": Rule(Arg.REQUIRED, as_long=True),
        **_letters("Fv"),
    },
    words={"-safe": Rule(), "-version": Rule()},  # one-true-awk spells these with one dash
    finish=_awk_finish,
)


# --------------------------------------------------------------------------- sed (only with --allow-dangerous)

_SED_SIMPLE = frozenset("=dDgGhHnNpPxzF{}")


def _sed_delimited(script: str, pos: int, delimiter: str, *, regex: bool) -> int:
    """Index after the closing ``delimiter`` of a regex/replacement starting at ``pos``; -1 if unterminated."""
    end = _delimited_end(script, pos, delimiter, brackets=regex)
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


_SED = Policy(
    long={
        "file": _refuse(_PROGRAM_FILE),
        "in-place": _refuse("edits files in place; write the output with '>' instead", Arg.OPTIONAL),
        **_values("expression line-length"),
    },
    short={
        "f": _refuse(_PROGRAM_FILE),
        "i": _refuse("edits files in place; write the output with '>' instead", Arg.OPTIONAL),
        **_letters("el"),
    },
    finish=_sed_finish,
)


# --------------------------------------------------------------------------- tar, sort, split, rg, make, small ones


_TAR_READS_NAMES = (
    "reads the names to archive from a file or stdin, and GNU tar also reads options there (-C, --directory),"
    " past any check of the arguments; give the names as arguments"
)


def _tar_archive(value: str, ctx: Context) -> str | None:
    if value == "-":
        return None
    if ":" in value.split("/", 1)[0]:
        return "names a remote archive ('host:file'), which tar opens by running rsh/ssh; write './name'"
    ctx.confine(value, PathUse.WRITE, "tar -f")
    return None


_TAR_ARCHIVE = Rule(Arg.REQUIRED, check=_tar_archive)
_TAR = Policy(
    long={
        **dict.fromkeys(
            ("checkpoint-action", "to-command", "use-compress-program", "rsh-command", "rmt-command",
             "info-script", "new-volume-script"),
            _refuse(_RUNS_VALUE),
        ),
        "absolute-names": _refuse("lets extraction write outside the target directory", Arg.NONE),
        "files-from": _refuse(_TAR_READS_NAMES),
        "file": _TAR_ARCHIVE,
        "directory": _path(PathUse.INSIDE),
        **dict.fromkeys(("listed-incremental", "index-file", "volno-file"), _path(PathUse.WRITE)),
        "checkpoint": OPTIONAL,
        **_values(
            "exclude exclude-from transform xform blocking-factor record-size format label newer "
            "after-date newer-mtime owner group mode mtime starting-file strip-components suffix tape-length "
            "exclude-tag exclude-tag-under exclude-tag-all warning quoting-style quote-chars no-quote-chars "
            "owner-map group-map pax-option level sort hole-detection sparse-version"
        ),
    },
    short={
        "f": _TAR_ARCHIVE,
        "C": _path(PathUse.INSIDE),
        "g": _path(PathUse.WRITE),
        "F": _refuse(_RUNS_VALUE),
        "I": _refuse(_RUNS_VALUE),
        "P": _refuse("lets extraction write outside the target directory", Arg.NONE),
        "T": _refuse(_TAR_READS_NAMES),
        **_letters("bHKLNVX"),
    },
    old_style=True,
)  # fmt: skip
# Letters whose value is the rest of the word in GNU tar and in bsdtar alike (bsdtar's -I is -T).
_TAR_VALUE_EVERYWHERE = frozenset("bCfITX")


def _tar(args: Sequence[str], ctx: Context) -> None:
    """Every word is first checked as if it were an option, then the arguments are read as GNU tar reads them.

    Dialects disagree on which letters take a value (GNU ``-H FORMAT``; bsdtar's ``-H`` takes none), so a
    word that one tar reads as a value is an option to another: ``tar -cH --use-compress-program=sh`` is
    harmless to GNU tar and runs sh in bsdtar. No dialect's parse decides that a refused option is data.
    """
    for index, element in enumerate(args, 1):
        if element.startswith("--"):
            found = resolve_long(_TAR.long, element[2:].partition("=")[0])
            if found is not None and found[1].refuse is not None:
                raise Refusal(index, f"--{found[0]} {found[1].refuse} (refused wherever it stands)")
        elif element.startswith("-") or (index == 1 and element):  # the first word may be old-style letters
            for letter in element.lstrip("-") if element.startswith("-") else element:
                rule = _TAR.short.get(letter)
                if rule is not None and rule.refuse is not None:
                    raise Refusal(index, f"-{letter} {rule.refuse} (refused wherever it stands)")
                if letter in _TAR_VALUE_EVERYWHERE and element.startswith("-"):
                    break  # the rest of the word is this letter's value in every tar
    _TAR.scan(args, ctx)


_SORT = Policy(
    long={
        "compress-program": _refuse(_RUNS_VALUE),
        "files0-from": _refuse(_READS_NAMES),
        "output": _path(PathUse.WRITE),
        "check": OPTIONAL,
        **_values("random-source sort batch-size key buffer-size field-separator temporary-directory parallel"),
    },
    short={"o": _path(PathUse.WRITE), **_letters("kSTt")},
)


def _split_finish(scan: Scan, ctx: Context) -> None:
    if len(scan.operands) >= 2:  # split [FILE [PREFIX]]: output files are named PREFIXaa, PREFIXab, ...
        ctx.confine(scan.operands[1][1], PathUse.INSIDE, "split output prefix")


_SPLIT = Policy(
    long={
        "filter": _refuse("runs a shell command for every output file"),
        "numeric-suffixes": OPTIONAL,
        "hex-suffixes": OPTIONAL,
        **_values("additional-suffix bytes line-bytes lines number separator suffix-length"),
    },
    short=_letters("abClnt"),
    finish=_split_finish,
)

_RG = Policy(
    long={
        "pre": _refuse("runs a preprocessor program on every file searched"),
        "hostname-bin": _refuse(_RUNS_VALUE),
        **_values(
            "pre-glob regexp file glob iglob type type-not type-add type-clear max-count after-context "
            "before-context context threads max-columns replace encoding max-depth max-filesize ignore-file "
            "path-separator colors color sort sortr dfa-size-limit regex-size-limit context-separator "
            "field-context-separator field-match-separator engine generate hyperlink-format"
        ),
    },
    short=_letters("efgtTmABCjMrEd"),
)

# make passes variable values into the shell commands of its recipes, and these variables decide how
# make runs them or which makefiles it reads.
_MAKE_CONTROL_VARIABLES = frozenset(
    {"SHELL", ".SHELLFLAGS", "MAKESHELL", "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKEFILES", "MAKE", "MAKE_COMMAND"}
)
# Every variable that GNU make's built-in database defines or that its built-in rules reference
# (``make -p -f /dev/null``, GNU make 4.3): with no Makefile rule of its own, ``make x`` with an ``x.c``
# present runs ``$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $(TARGET_ARCH) x.c $(LOADLIBES) $(LDLIBS) -o x``
# in /bin/sh, so a plain word is enough (``CC=python3`` runs x.c as Python). -r/-R do not make these
# safe: a Makefile's own recipes use $(CC) and $(CFLAGS) too, and -R only drops make's defaults.
_MAKE_BUILTINS = (
    "AR ARFLAGS AS ASFLAGS CC CFLAGS CO COFLAGS CPP CPPFLAGS CTANGLE CWEAVE CXX CXXFLAGS DEFFLAGS F77 F77FLAGS FC "
    "FFLAGS GET GFLAGS LD LDFLAGS LDLIBS LEX LFLAGS LINT LINTFLAGS LOADLIBES M2C M2FLAGS MAKEINFO MAKEINFO_FLAGS "
    "MODFLAGS OBJC OBJCFLAGS OUTPUT_OPTION PC PFLAGS RFLAGS RM SCCS_OUTPUT_OPTION SUFFIXES TANGLE TARGET_ARCH "
    "TARGET_MACH TEX TEXI2DVI TEXI2DVI_FLAGS WEAVE YACC YFLAGS CURDIR VPATH GPATH"
)
_MAKE_BUILTIN_VARIABLES = frozenset(_MAKE_BUILTINS.split())
# Other names refused by shape, so that a make with more built-ins (or another version) is covered too:
# any *FLAGS/*LIBS/*LIBES/*_OPTION, MAKE* (dotted names like LINK.c are not plain names at all), and the
# variables that make exports to recipes because they came from the environment (PATH, HOME, LANG,
# LC_*) or that change how any program runs (LD_*, IFS, ENV, BASH_ENV, TMPDIR).
_MAKE_REFUSED_SHAPE = re.compile(
    r".*(?:FLAGS|LIBS|LIBES|_OPTION)|MAKE.*|PATH|HOME|LANG|LANGUAGE|LC_\w*|LD_\w*|IFS|ENV|BASH_ENV|TMPDIR|TZ"
)
_MAKE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAKE_SHELL_SYNTAX = re.compile(r"[$`;|&<>()\\\n]")


def _make_file(value: str, ctx: Context) -> str | None:
    if value == "-":
        return "reads the makefile from stdin"
    ctx.confine(value, PathUse.INSIDE, "make -f")
    return None


def _make_finish(scan: Scan, _ctx: Context) -> None:
    for index, operand in scan.operands:
        name, is_assignment, _ = operand.partition("=")
        if not is_assignment:
            continue
        if name.endswith("!"):
            raise Refusal(index, "a '!=' assignment runs a shell command")
        bare = name.rstrip(":+? \t").strip()
        if bare in _MAKE_CONTROL_VARIABLES:
            raise Refusal(index, f"assigning {bare} changes how make runs commands")
        if not _MAKE_NAME.fullmatch(bare):
            raise Refusal(
                index, f"{bare!r} is not a plain variable name (letters, digits, '_'); pass the value another way"
            )
        if bare in _MAKE_BUILTIN_VARIABLES or _MAKE_REFUSED_SHAPE.fullmatch(bare):
            raise Refusal(
                index,
                f"{bare} is one of make's built-in or environment variables, which its built-in rules and recipes "
                "run as commands or flags (CC=python3 runs x.c); set it in the Makefile instead",
            )
        if _MAKE_SHELL_SYNTAX.search(operand):
            raise Refusal(
                index,
                "make splices variable values into recipe shell commands, so an assignment may not hold "
                "'$' references or the shell characters ; | & < > ( ) ` \\ and newlines",
            )


_MAKE_FILE = Rule(Arg.REQUIRED, check=_make_file)
_MAKE = Policy(
    long={
        "file": _MAKE_FILE,
        "makefile": _MAKE_FILE,
        "directory": _path(PathUse.INSIDE),
        "eval": _refuse("evaluates its value as makefile text, which can run shell commands"),
        **dict.fromkeys(("jobs", "load-average", "output-sync", "debug", "shuffle"), OPTIONAL),
        **_values("include-dir old-file assume-old what-if new-file assume-new jobserver-style jobserver-auth"),
    },
    short={
        "f": _MAKE_FILE,
        "C": _path(PathUse.INSIDE),
        "E": _refuse("evaluates its value as makefile text, which can run shell commands"),
        "j": OPTIONAL,
        "l": OPTIONAL,
        "O": OPTIONAL,
        **_letters("IoW"),
    },
    finish=_make_finish,
)

_FILES0_ONLY = Policy(long={"files0-from": _refuse(_READS_NAMES)})  # du, wc: catches --f= abbreviations
_SDIFF = Policy(
    long={"diff-program": _refuse(_RUNS_VALUE), "output": _path(PathUse.WRITE)},
    short={"o": _path(PathUse.WRITE)},
)
_DIFF3 = Policy(long={"diff-program": _refuse(_RUNS_VALUE)})
_WGET = Policy(  # -e runs .wgetrc commands such as use_askpass=PROGRAM
    long={
        "use-askpass": _refuse(_RUNS_VALUE),
        "execute": _refuse("runs a .wgetrc command (use_askpass runs programs)"),
    },
    short={"e": _refuse("runs a .wgetrc command (use_askpass runs programs)")},
)


def _zip(args: Sequence[str], _ctx: Context) -> None:
    """zip -TT/--unzip-command runs a command to test the archive; -TT is a two-letter short option."""
    for index, element in enumerate(args, 1):
        name = element[2:].partition("=")[0].lower()
        if element.startswith("--") and name and "unzip-command".startswith(name):
            raise Refusal(index, f"--unzip-command {_RUNS_VALUE}")
        if element.startswith("-") and not element.startswith("--") and "TT" in element:
            raise Refusal(index, f"-TT {_RUNS_VALUE}")


# --------------------------------------------------------------------------- find

_FIND_REFUSED = {
    **dict.fromkeys(("-exec", "-execdir", "-ok", "-okdir"), "runs a command for every file it finds"),
    "-fls": "writes its listing to a file",
    "-files0-from": _READS_NAMES,
}


def _find(args: Sequence[str], ctx: Context) -> None:
    """find's expression is a list of words; the refused ones are refused wherever they appear."""
    for index, element in enumerate(args, 1):
        if element in _FIND_REFUSED:
            raise Refusal(index, f"{element} {_FIND_REFUSED[element]}; list the names and process them in another call")
        if element.startswith("-fprint"):
            raise Refusal(index, f"{element} writes its output to a file; use '>' instead")
    if "-delete" in args:
        _find_delete(args, ctx)


def _find_delete(args: Sequence[str], ctx: Context) -> None:
    """-delete is allowed when every starting point is inside the base path and links are not followed."""
    delete = args.index("-delete") + 1
    if "-L" in args or "-follow" in args:
        raise Refusal(delete, "-delete together with -L or -follow can delete through symbolic links")
    pos = 0  # skip find's own options: -H -L -P -D debugopts -Olevel
    while pos < len(args) and (args[pos] in ("-H", "-L", "-P", "-D") or args[pos].startswith("-O")):
        pos += 2 if args[pos] == "-D" else 1
    while pos < len(args) and not args[pos].startswith("-") and args[pos] not in ("(", "!", ")", ","):
        ctx.confine(args[pos], PathUse.INSIDE, "find starting point with -delete")
        pos += 1


# --------------------------------------------------------------------------- git
#
# The repository is the risk: git runs programs its configuration names (aliases with '!', core.fsmonitor,
# hooks, diff/filter/merge drivers, credential helpers). The rule: the agent never chooses a configuration
# git reads. Configuration on the command line is refused; the configuration files git reads are ones the
# agent cannot write through this server (the runner points the global file at /dev/null, since HOME is the
# base path; a repository's own files live under '.git', which no redirection or git output may enter;
# bare repositories, whose files have no '.git' in their path, are never used: the runner sets
# safe.bareRepository=explicit and '--git-dir'/'--bare' are refused; a separate git directory is refused).
# Hooks never run (core.hooksPath=/dev/null) and the subcommand must be one of git's own, so no alias runs.

_GIT_CONFIG = "sets configuration for this call, and configuration names programs git runs (core.fsmonitor, aliases with '!', diff drivers)"  # noqa: E501
_GIT_END = frozenset({"--", "--end-of-options"})
_GIT_SEPARATE = "puts the repository in a directory of another name, where its configuration could be written"
# Options refused or confined for every git subcommand (fail closed: also where git does not know them).
_GIT_COMMON = {
    **dict.fromkeys(("upload-pack", "receive-pack", "exec"), _refuse(_RUNS_VALUE)),
    "exec-path": Rule(Arg.OPTIONAL, refuse_value="runs git programs from that directory"),
    "config-env": _refuse(_GIT_CONFIG),
    "output": _path(PathUse.WRITE),
    "separate-git-dir": _refuse(_GIT_SEPARATE),
}
_GIT_GLOBAL = Policy(
    long={
        **_GIT_COMMON,
        "config": _refuse(_GIT_CONFIG),
        "git-dir": _refuse("uses a repository whose configuration can name programs to run"),
        "bare": _refuse("uses the directory as a repository explicitly, whatever wrote its configuration", Arg.NONE),
        "work-tree": _path(PathUse.INSIDE),
        **_values("namespace super-prefix list-cmds attr-source"),
    },
    short={"c": _refuse(_GIT_CONFIG), "C": _path(PathUse.INSIDE)},
    permute=False,  # global options end at the subcommand
)


def _git_policy(
    long: Mapping[str, Rule] | None = None, short: Mapping[str, Rule] | None = None, finish: Finish | None = None
) -> Policy:
    return Policy(long={**_GIT_COMMON, **(long or {})}, short=short or {}, end_markers=_GIT_END, finish=finish)


def _first_operand_refused(word: str, reason: str) -> Finish:
    def finish(scan: Scan, _ctx: Context) -> None:
        if scan.operands and scan.operands[0][1].lower() == word:
            raise Refusal(scan.operands[0][0], reason)

    return finish


def _operands_are(uses: Mapping[int, PathUse], what: str, *, after: str | None = None) -> Finish:
    """Confine operands by position (counted after the first operand ``after``, when given: 'worktree add')."""

    def finish(scan: Scan, ctx: Context) -> None:
        operands = list(scan.operands)
        if after is not None:
            if not operands or operands[0][1] != after:
                return
            operands = operands[1:]
        for position, use in uses.items():
            if position < len(operands) and operands[position][1] != "-":
                ctx.confine(operands[position][1], use, f"git {what}")

    return finish


def _git_prefix(value: str, ctx: Context) -> str | None:
    """checkout-index --prefix and pack-objects base names are prefixes: the directory they name is written."""
    ctx.confine(value if value.endswith("/") else os.path.dirname(value) or ".", PathUse.OUTPUT, "git prefix")
    return None


def _git_smtp_server(value: str, _ctx: Context) -> str | None:
    """send-email runs an absolute path as its sendmail program; anything else is a host name."""
    return (
        "is an absolute path, which git send-email runs as a program; give a host name"
        if value.startswith("/")
        else None
    )


def _git_maintenance(scan: Scan, _ctx: Context) -> None:
    if scan.operands and scan.operands[0][1] != "run":
        index, word = scan.operands[0]
        raise Refusal(index, f"git maintenance {word} schedules jobs (cron, systemd) or changes configuration")


def _git_worktree(scan: Scan, ctx: Context) -> None:
    _operands_are({0: PathUse.OUTPUT}, "worktree add path", after="add")(scan, ctx)
    _operands_are({1: PathUse.OUTPUT}, "worktree move path", after="move")(scan, ctx)


def _git_pack_base(scan: Scan, ctx: Context) -> None:
    if scan.operands:
        _git_prefix(scan.operands[0][1], ctx)


_GIT_OUT_DIR = _path(PathUse.OUTPUT)
_GIT_WRITES = _path(PathUse.WRITE)
_GIT_SUBCOMMANDS: dict[str, Policy] = {
    "clone": _git_policy(
        long={
            "config": _refuse(_GIT_CONFIG),
            "template": _refuse("copies hooks and configuration from a template directory"),
            **_values("origin branch depth reference reference-if-able shallow-since shallow-exclude jobs filter"),
        },
        short={"c": _refuse(_GIT_CONFIG), "u": _refuse(_RUNS_VALUE), **_letters("objs")},
        finish=_operands_are({1: PathUse.OUTPUT}, "clone directory"),
    ),
    "init": _git_policy(
        long={
            "template": _refuse("copies hooks and configuration from a template directory"),
            **_values("initial-branch object-format ref-format shared"),
        },
        short=_letters("b"),
        finish=_operands_are({0: PathUse.OUTPUT}, "init directory"),
    ),
    "worktree": _git_policy(
        short=_letters("bB"),
        long=_values("reason"),
        finish=_git_worktree,
    ),
    "bundle": _git_policy(finish=_operands_are({0: PathUse.WRITE}, "bundle create file", after="create")),
    "checkout-index": _git_policy(long={"prefix": Rule(Arg.REQUIRED, check=_git_prefix)}),
    "pack-objects": _git_policy(
        finish=_git_pack_base,
        long=_values("window depth window-memory max-pack-size threads compression filter"),
    ),
    "credential-store": _git_policy(long={"file": _GIT_WRITES}),
    "fast-export": _git_policy(long={"export-marks": _GIT_WRITES}),
    "fast-import": _git_policy(long={"export-marks": _GIT_WRITES, "export-pack-edges": _GIT_WRITES}),
    "index-pack": _git_policy(short={"o": _GIT_WRITES}),
    "mailsplit": _git_policy(short={"o": _GIT_OUT_DIR}),
    "mailinfo": _git_policy(finish=_operands_are({0: PathUse.WRITE, 1: PathUse.WRITE}, "mailinfo output")),
    "merge-file": _git_policy(short=_letters("L"), finish=_operands_are({0: PathUse.WRITE}, "merge-file output")),
    "bugreport": _git_policy(short={"o": _GIT_OUT_DIR, **_letters("s")}, long={"output-directory": _GIT_OUT_DIR}),
    "diagnose": _git_policy(short={"o": _GIT_OUT_DIR, **_letters("s")}, long={"output-directory": _GIT_OUT_DIR}),
    "commit-graph": _git_policy(long={"object-dir": _GIT_OUT_DIR}),
    "multi-pack-index": _git_policy(long={"object-dir": _GIT_OUT_DIR}),
    **dict.fromkeys(
        ("upload-pack", "receive-pack", "upload-archive"),
        _git_policy(finish=_operands_are({0: PathUse.INSIDE}, "repository")),
    ),
    "apply": _git_policy(
        long={"unsafe-paths": _refuse("writes files outside the working tree", Arg.NONE), **_values("directory")}
    ),
    "ls-remote": _git_policy(short={"u": _refuse(_RUNS_VALUE)}, long=_values("sort server-option")),
    "archive": _git_policy(short={"o": _path(PathUse.WRITE)}, long=_values("remote prefix format add-file")),
    "grep": _git_policy(
        long={
            "open-files-in-pager": _refuse("runs a pager program", Arg.OPTIONAL),
            **_values("max-depth threads context after-context before-context max-count"),
        },
        short={"O": _refuse("runs a pager program", Arg.OPTIONAL), **_letters("efABCm")},
    ),
    "rebase": _git_policy(
        short={"x": _refuse("runs a shell command after each commit"), **_letters("sX")},
        long=_values("onto strategy strategy-option"),
    ),
    "send-email": _git_policy(
        long={
            **dict.fromkeys(
                ("sendmail-cmd", "smtp-server-option", "to-cmd", "cc-cmd", "header-cmd"), _refuse(_RUNS_VALUE)
            ),
            "smtp-server": Rule(Arg.REQUIRED, check=_git_smtp_server),
            **_values(
                "to cc bcc from subject in-reply-to reply-to envelope-sender smtp-server-port smtp-user smtp-pass"
                " smtp-encryption smtp-domain smtp-auth smtp-ssl-cert-path identity confirm suppress-cc"
                " transfer-encoding 8bit-encoding compose-encoding batch-size relogin-delay"
            ),
        }
    ),
    "format-patch": _git_policy(short={"o": _GIT_OUT_DIR}, long={"output-directory": _GIT_OUT_DIR}),
    "bisect": _git_policy(finish=_first_operand_refused("run", "git bisect run runs a command at every step")),
    "submodule": _git_policy(
        finish=_first_operand_refused("foreach", "git submodule foreach runs a shell command in every submodule")
    ),
    "maintenance": _git_policy(finish=_git_maintenance),
    "help": _git_policy(
        long={
            "web": _refuse("opens a web browser", Arg.NONE),
            **dict.fromkeys(("man", "info"), _refuse("runs man or info, readers with shell escapes", Arg.NONE)),
        },
        short={
            "w": _refuse("opens a web browser", Arg.NONE),
            **dict.fromkeys("mi", _refuse("runs man or info, readers with shell escapes", Arg.NONE)),
        },
    ),
    "pull": _git_policy(short=_letters("sX"), long=_values("strategy strategy-option depth")),
}
_GIT_DEFAULT = _git_policy()
_GIT_REFUSED_SUBCOMMANDS = {
    "config": "changes configuration, and configuration names programs git runs",
    "filter-branch": "runs the shell commands given in its filter options",
    "difftool": "runs an external diff program (--extcmd, --tool, or an editor reading stdin)",
    "difftool--helper": "is the internal helper behind difftool",
    "mergetool": "runs an external merge program (--tool, or an editor reading stdin)",
    "merge-index": "runs the program it is given for every unmerged file",
    "merge-one-file": "is the internal helper behind merge-index",
    "for-each-repo": "runs git in every repository a configuration value names, wherever they are",
    "daemon": "starts a network server",
    "instaweb": "starts a web server and a browser",
    "web--browse": "runs a browser command",
    "shell": "runs the commands it is given",
    "submodule--helper": "is the internal helper behind 'submodule foreach'",
    "hook": "runs hooks",
    **dict.fromkeys(
        ("credential-cache", "credential-cache--daemon", "fsmonitor--daemon"),
        "starts a daemon that outlives the call",
    ),
}
# git's own commands (git 2.39 `git --list-cmds=main,builtins`, plus newer ones): no other subcommand is run,
# since any other name is an alias (which can be '!' and a shell command) or a git-* program on PATH.
_GIT_COMMAND_NAMES = """
    add am annotate apply archive bisect blame branch bugreport bundle cat-file check-attr check-ignore
    check-mailmap check-ref-format checkout checkout-index cherry cherry-pick clean clone column commit
    commit-graph commit-tree count-objects credential credential-store describe diagnose diff diff-files
    diff-index diff-pairs diff-tree fast-export fast-import fetch fetch-pack fmt-merge-msg for-each-ref
    format-patch fsck fsck-objects gc get-tar-commit-id grep hash-object help http-backend http-fetch http-push
    imap-send index-pack init init-db interpret-trailers last-modified log ls-files ls-remote ls-tree mailinfo
    mailsplit maintenance merge merge-base merge-file merge-octopus merge-ours merge-recursive
    merge-recursive-ours merge-recursive-theirs merge-resolve merge-subtree merge-tree mktag mktree
    multi-pack-index mv name-rev notes pack-objects pack-redundant pack-refs patch-id pickaxe prune
    prune-packed pull push quiltimport range-diff read-tree rebase receive-pack reflog refs remote repack
    replace replay request-pull rerere reset restore rev-list rev-parse revert rm send-email send-pack
    shortlog show show-branch show-index show-ref sparse-checkout stage stash status stripspace submodule
    subtree switch symbolic-ref tag unpack-file unpack-objects update-index update-ref update-server-info
    upload-archive upload-pack var verify-commit verify-pack verify-tag version whatchanged worktree
    write-tree
"""
_GIT_COMMANDS = frozenset(_GIT_COMMAND_NAMES.split())


def _git(args: Sequence[str], ctx: Context) -> None:
    for index, element in enumerate(args, 1):
        if "ext::" in element.lower():
            raise Refusal(index, "names an ext:: transport, which runs the command that follows it")
    scan = _GIT_GLOBAL.scan(args, ctx)
    if not scan.operands:
        return
    index, subcommand = scan.operands[0]
    name = subcommand.lower()
    reason = _GIT_REFUSED_SUBCOMMANDS.get(name)
    if reason is None and name.startswith("remote-"):
        reason = "is a remote helper (git remote-ext runs the command it is given)"
    if reason is None and subcommand not in _GIT_COMMANDS:
        reason = (
            "is not one of git's own commands; aliases and git-* programs are not run (an alias can be a shell command)"
        )
    if reason is not None:
        raise Refusal(index, f"git {subcommand} {reason}")
    _GIT_SUBCOMMANDS.get(name, _GIT_DEFAULT).scan(args[index:], ctx, offset=index + 1)


# --------------------------------------------------------------------------- the table

Checker = Callable[[Sequence[str], Context], None]

POLICIES: Mapping[str, Checker] = {
    "git": _git,
    "find": _find,
    "awk": _AWK,
    "tar": _tar,
    "sort": _SORT,
    "split": _SPLIT,
    "rg": _RG,
    "sed": _SED,
    "make": _MAKE,
    "du": _FILES0_ONLY,
    "wc": _FILES0_ONLY,
    "sdiff": _SDIFF,
    "diff": _DIFF3,  # diff3 folds to diff (version suffixes are dropped); GNU diff has no --diff-* options
    "zip": _zip,
    "wget": _WGET,
}


def check_arguments(program: str, args: Sequence[str], ctx: Context) -> None:
    """Apply the global rules and ``program``'s policy (if any) to a stage's arguments (argv[1:])."""
    _files0_from(args)
    checker = POLICIES.get(program)
    if checker is not None:
        checker(args, ctx)
