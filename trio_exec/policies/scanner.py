"""The option grammar the per-program policies are written in, and the scanner that applies it.

A ``Policy`` is a small table of ``Rule``s (long options, short options, whole single-dash words) and a
``finish`` hook for operands; calling it walks a stage's arguments like the program's option parser
(``_Scanner``) and raises ``Refusal``. Also here: the helpers that build rules (``refuse``, ``path_rule``,
``values``, ``letters``), the reasons several programs share, and ``delimited_end``, which the awk and
sed checkers both use to find where a string or regex ends.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

import attrs

from trio_exec.paths import PathUse


class Refusal(Exception):
    """An argument breaks a policy; ``index`` counts the stage's argv elements (0 is the program)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason


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


def refuse(reason: str, arg: Arg = Arg.REQUIRED) -> Rule:
    return Rule(arg, refuse=reason)


def path_rule(use: PathUse, arg: Arg = Arg.REQUIRED) -> Rule:
    return Rule(arg, path=use)


def values(names: str) -> dict[str, Rule]:
    """Harmless long options that take a value (space-separated); listed so the value is not read as an option."""
    return dict.fromkeys(names.split(), VALUE)


def letters(letters: str) -> dict[str, Rule]:
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

RUNS_VALUE = "runs the program or shell command given as its value"
READS_NAMES = "reads the names of the files to process from a file, past any check of the arguments"
PROGRAM_FILE = "reads the program from a file, which is not checked like program text"


# --------------------------------------------------------------------------- strings and regexes (awk, sed)


def delimited_end(text: str, pos: int, delimiter: str, *, brackets: bool) -> int:
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
