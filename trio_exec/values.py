"""Placeholder values: their kinds, the operator's constraints, and the rules of every kind but the path kind.

Job: the per-kind rules that decide whether one agent-supplied value may become one argv element
(DESIGN.md §3). Each check returns a ``Problem`` (the rule, the remedy, and the rule to show for a sensitive
argument) or None; ``validation.validate_value`` applies them in order, with the path kind (which confines
the value to the base path) and ``message`` turns a ``Problem`` into the refusal's text.

Invariants:
- Pure: no trio, no subprocess, no OS access.
- A refusal's message names the argument, the rule and what would be accepted instead. For a sensitive
  argument no part of the value appears in it.
- Rules name specific syntax (a leading ``-``, a metacharacter, a ``..`` component, a flag name); nothing
  here matches a word inside ordinary text, so benign values are not over-blocked.
- Checks never rewrite a value: what was validated is exactly what reaches argv.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

import attrs

from trio_exec.paths import PathPolicy, has_dotdot
from trio_exec.regexes import CANNOT_COMPILE, compile_error, compile_regex
from trio_exec.text import MAX_DECODE_ROUNDS, excerpt, find_bad_char, variants_of

__all__ = [
    "MAX_ARGV", "MAX_VALUE_BYTES", "MIN_TIMEOUT_S", "PATH_METACHARACTERS", "TOO_DEEP", "Check", "CheckContext",
    "Constraint", "Kind", "Problem", "check_choices", "check_common", "check_flag", "check_integer",
    "check_max_length", "check_plain", "check_regex", "check_text", "kind_from_name", "leading_dash", "message",
    "metacharacter",
]  # fmt: skip

MAX_VALUE_BYTES: int = 64 * 1024  # UTF-8 bytes, as mcp-secure-exec's MAX_ARG_LENGTH
MAX_ARGV: int = 256
MIN_TIMEOUT_S: float = 0.1  # the smallest per-call 'timeout' a client may ask for (the one place it is named)

_MAX_INTEGER_DIGITS = 100  # far beyond any real option, far below int()'s own 4300-digit limit
_MAX_LISTED_CHOICES = 10


# --------------------------------------------------------------------------- kinds


class Kind(str, enum.Enum):
    """Placeholder kinds (DESIGN.md §3); the value is the config-file spelling."""

    PLAIN = "plain"
    PATH = "path"
    FLAG = "flag"
    REGEX = "regex"
    TEXT = "text"
    INTEGER = "integer"
    ENUM = "enum"


_PATH_NAMES = frozenset({"path", "file", "dir", "filepath"})
_REGEX_NAMES = frozenset({"regex", "pattern", "regexp"})
_SUFFIX_KINDS: tuple[tuple[str, Kind], ...] = (
    ("_path", Kind.PATH),
    ("_file", Kind.PATH),
    ("_dir", Kind.PATH),
    ("_flag", Kind.FLAG),
    ("_opt", Kind.FLAG),
    ("_regex", Kind.REGEX),
    ("_pattern", Kind.REGEX),
    ("_regexp", Kind.REGEX),
)


def kind_from_name(name: str) -> Kind:
    """The kind a placeholder gets from its name when the config file does not say (case-insensitive)."""
    lowered = name.lower()
    if lowered in _PATH_NAMES:
        return Kind.PATH
    if lowered in _REGEX_NAMES:
        return Kind.REGEX
    for suffix, kind in _SUFFIX_KINDS:
        if lowered.endswith(suffix):
            return kind
    return Kind.PLAIN


@attrs.frozen
class Constraint:
    """Operator-given limits from the config file; each applies to any kind when set."""

    enum: tuple[str, ...] | None = None
    pattern: str | None = None  # Python regex that must match the whole value
    max_length: int | None = None  # characters
    minimum: int | None = None  # integer kind only
    maximum: int | None = None  # integer kind only


@attrs.frozen
class Problem:
    """One broken rule. ``rule`` may quote the value; ``hidden_rule`` is used for sensitive arguments."""

    rule: str
    remedy: str
    hidden_rule: str | None = None


@attrs.frozen
class CheckContext:
    paths: PathPolicy
    constraint: Constraint


Check = Callable[[str, CheckContext], "Problem | None"]


# --------------------------------------------------------------------------- every kind


def check_common(value: str, *, text: bool) -> Problem | None:
    if "\x00" in value:
        return Problem("NUL bytes are not allowed", "remove the NUL character")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE_BYTES:
        return Problem(
            f"the value is {size} bytes long, more than the limit of {MAX_VALUE_BYTES} bytes",
            "send a shorter value (or pass large input through stdin where the tool allows it)",
        )
    bad = find_bad_char(value, text=text)
    if bad is not None:
        index, char, reason = bad
        allowed = " (newline and tab are fine)" if text else ""
        return Problem(
            f"{reason} are not allowed{allowed}: U+{ord(char):04X} at position {index}",
            "remove the invisible or control character",
            hidden_rule=f"{reason} are not allowed{allowed}",
        )
    if value == "--":
        return Problem(
            "the end-of-options marker '--' is not allowed",
            "give the value itself; the template decides where options end",
        )
    return None


def check_max_length(value: str, constraint: Constraint) -> Problem | None:
    if constraint.max_length is not None and len(value) > constraint.max_length:
        return Problem(
            f"the value has {len(value)} characters, more than the limit of {constraint.max_length}",
            f"send at most {constraint.max_length} characters",
        )
    return None


def check_choices(value: str, constraint: Constraint) -> Problem | None:
    if constraint.enum is not None and value not in constraint.enum:
        return Problem("the value is not one of the allowed values", _choices(constraint.enum))
    if constraint.pattern is not None and compile_regex(constraint.pattern).fullmatch(value) is None:
        return Problem(
            f"the value does not match the pattern {constraint.pattern!r} set by the operator",
            "give a value that matches the whole pattern",
        )
    return None


def _choices(values: tuple[str, ...]) -> str:
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED_CHOICES])
    return f"use one of {shown}" + (", ..." if len(values) > _MAX_LISTED_CHOICES else "")


# --------------------------------------------------------------------------- shared syntax helpers

_PLAIN_METACHARACTERS = re.compile(r"[;|&$`()<>\\]")
PATH_METACHARACTERS = re.compile(r"[;|&$`<>\\]")  # parentheses and spaces are ordinary in file names
_REGEX_METACHARACTERS = re.compile(r"[;&`<>]")


def leading_dash(what: str) -> Problem:
    return Problem(
        "a leading '-' is not allowed (the program would read the value as an option)",
        f"give {what} that does not start with '-'",
    )


def metacharacter(char: str, remedy: str) -> Problem:
    return Problem(
        f"the shell metacharacter {char!r} is not allowed",
        remedy,
        hidden_rule="shell metacharacters are not allowed",
    )


TOO_DEEP = Problem(
    f"the value is percent-encoded more than {MAX_DECODE_ROUNDS} times over",
    "send the value without percent-encoding",
)


def _traversal_in_variants(value: str) -> Problem | None:
    """Refuse values whose decoded or normalised readings traverse, start at '/' or '~', or hide controls."""
    variants, too_deep = variants_of(value)
    if too_deep:
        return TOO_DEEP
    for label, form in variants:
        if has_dotdot(form) or form.startswith(("/", "~", "\\")) or find_bad_char(form) is not None:
            return Problem(
                f"its {label} is a path traversal, an absolute or home path, or holds control characters",
                "send the text without percent-encoding or look-alike characters",
            )
    return None


# --------------------------------------------------------------------------- plain

# NAME=value arguments become environment variables for env, sudo, make-style tools and some
# launchers; these names change which code a program or its dynamic loader runs.
_LOADER_VARIABLES = frozenset(
    {
        "PATH", "ENV", "BASH_ENV", "SHELL", "SHELLOPTS", "BASHOPTS", "IFS", "CDPATH", "GLOBIGNORE", "PS4",
        "PROMPT_COMMAND", "ZDOTDIR", "HOME", "XDG_CONFIG_HOME", "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH",
        "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS", "CLASSPATH", "GEM_HOME", "GEM_PATH", "PHPRC", "PHP_INI_SCAN_DIR", "EDITOR",
        "VISUAL", "PAGER", "MANPAGER", "LESSOPEN", "LESSCLOSE", "BROWSER", "SSH_ASKPASS", "SUDO_ASKPASS",
        "OPENSSL_CONF", "OPENSSL_ENGINES", "MAKEFLAGS", "MFLAGS", "MAKEFILES",
    }
)  # fmt: skip
_LOADER_PREFIXES = ("LD_", "DYLD_", "PYTHON", "NODE_", "PERL", "RUBY", "LUA_", "GIT_", "BASH_FUNC_")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


def _is_loader_variable(name: str) -> bool:
    upper = name.upper()
    return upper in _LOADER_VARIABLES or upper.startswith(_LOADER_PREFIXES)


def check_plain(value: str, _ctx: CheckContext) -> Problem | None:
    if value.startswith("-"):
        return leading_dash("a value")
    meta = _PLAIN_METACHARACTERS.search(value)
    if meta is not None:
        return metacharacter(meta.group(), "plain values may use letters, digits, spaces and .,:@%+=_/\"'")
    if value.startswith(("/", "~")):
        return Problem(
            "a leading '/' or '~' is not allowed (plain values are not absolute or home paths)",
            "give a relative name such as 'example.txt'",
        )
    if has_dotdot(value):
        return Problem(
            "'..' path components are not allowed (they leave the working directory)",
            "give a name without '..' components such as 'example.txt' ('a..b' is fine)",
        )
    assignment = _ASSIGNMENT.match(value)
    if assignment is not None and _is_loader_variable(assignment.group(1)):
        return Problem(
            f"assigning the loader/interpreter variable {assignment.group(1)} is not allowed",
            "NAME=value is accepted only for ordinary names such as 'key=value'",
            hidden_rule="assigning a loader/interpreter variable (NAME=value) is not allowed",
        )
    return _traversal_in_variants(value)


# --------------------------------------------------------------------------- flag

# Single letters that, for common programs, run code, write files or edit in place. A cluster is
# refused when any letter is one of these, because getopt reads '-lx' as '-l -x'.
_DANGEROUS_SHORT: dict[str, str] = {
    "e": "runs a script or expression (sed -e, perl -e)",
    "c": "runs a command string (sh -c, python -c)",
    "x": "extracts archives or traces commands (tar -x, bash -x)",
    "o": "writes an output file (sort -o, cc -o)",
    "v": "assigns program variables (awk -v)",
    "f": "reads a program from a file (awk -f, sed -f, make -f)",
    "i": "edits files in place (sed -i, perl -i)",
    "E": "runs a program file (gawk -E)",
    "I": "runs a compression program or adds a code path (tar -I, perl -I)",
}
# find actions and JVM agents are single-dash words; named so the message says what they do.
_DANGEROUS_SINGLE_DASH_WORDS = frozenset(
    {"exec", "execdir", "ok", "okdir", "delete", "fprint", "fprint0", "fprintf", "fls"}
)
_DANGEROUS_SINGLE_DASH_PREFIXES = ("javaagent", "agentlib", "agentpath", "xbootclasspath", "xx:")

_RUNS = "runs a command"
_WRITES = "writes or deletes files"
_LOADS = "loads code or configuration"
_DANGEROUS_LONG: dict[str, str] = {
    **dict.fromkeys(
        ("--exec", "--exec-batch", "--execute", "--command", "--run", "--script", "--extcmd", "--shell",
         "--pager", "--open-files-in-pager", "--checkpoint-action", "--to-command", "--pre", "--filter",
         "--use-compress-program", "--compress-program", "--rsh", "--rsh-command", "--rsync-path",
         "--info-script", "--new-volume-script", "--upload-pack", "--receive-pack", "--unzip-command",
         "--index-filter", "--tree-filter", "--msg-filter", "--env-filter", "--commit-filter",
         "--parent-filter", "--tag-name-filter"),
        _RUNS,
    ),
    **dict.fromkeys(
        ("--eval", "--expression", "--source", "--file", "--require", "--import", "--load", "--loader",
         "--experimental-loader", "--rcfile", "--init-file", "--config", "--config-env", "--exec-path",
         "--git-dir", "--work-tree", "--template", "--files0-from", "--files-from"),
        _LOADS,
    ),
    **dict.fromkeys(
        ("--output", "--output-document", "--output-file", "--log-file", "--append-output", "--delete",
         "--remove-files", "--remove-source-files", "--in-place", "--post-file", "--body-file",
         "--upload-file"),
        _WRITES,
    ),
}  # fmt: skip
_SHORT_CLUSTER = re.compile(r"-[A-Za-z0-9]+")
_LONG_NAME = re.compile(r"--[A-Za-z0-9][A-Za-z0-9_-]*")
_FLAG_VALUE = re.compile(r"[\w.,:@%+=/*-]*")  # \w is Unicode-aware: letters, digits, underscore
_FLAG_REMEDY = "give a harmless flag such as '-h', '-la' or '--verbose', or ask the operator for an enum"


def _dangerous_long(name: str) -> str | None:
    """The dangerous option ``name`` spells or abbreviates (GNU getopt accepts unique prefixes)."""
    lowered = name.lower()
    return next((option for option in _DANGEROUS_LONG if option.startswith(lowered)), None)


def check_flag(value: str, _ctx: CheckContext) -> Problem | None:
    if value.startswith("--"):
        return _check_long_flag(value)
    if value.startswith("-"):
        return _check_short_flag(value)
    return Problem("a flag must start with '-'", "give a flag shaped like -x, -xyz, --long or --long=value")


def _check_long_flag(value: str) -> Problem | None:
    name, has_value, argument = value.partition("=")
    if _LONG_NAME.fullmatch(name) is None:
        return Problem(
            "a long flag name may use only letters, digits, '-' and '_'",
            "give a flag shaped like --long or --long=value",
        )
    option = _dangerous_long(name)
    if option is not None:
        spelled = "" if option == name.lower() else f" abbreviates {option}, which"
        return Problem(
            f"the option {name}{spelled} {_DANGEROUS_LONG[option]}",
            _FLAG_REMEDY,
            hidden_rule=f"the flag names an option that {_DANGEROUS_LONG[option]}",
        )
    if has_value:
        if _FLAG_VALUE.fullmatch(argument) is None:
            return Problem(
                "a flag value may use only letters, digits and .,:@%+=/*-_",
                "give a simpler value, or ask the operator for a separate placeholder",
            )
        if argument.startswith("/") or has_dotdot(argument) or _traversal_in_variants(argument) is not None:
            return Problem(
                "a flag value may not be an absolute path or contain '..' components",
                "give a relative value such as --name=subdir/file.txt",
            )
    return None


def _check_short_flag(value: str) -> Problem | None:
    word = value[1:]
    option = re.split(r"[=:]", word, maxsplit=1)[0]
    java_agent = word.lower().startswith(_DANGEROUS_SINGLE_DASH_PREFIXES)
    if option.lower() in _DANGEROUS_SINGLE_DASH_WORDS or java_agent:
        return Problem(
            f"the option -{option} runs code or changes files (find, java)",
            _FLAG_REMEDY,
            hidden_rule="find actions and JVM agents are not allowed",
        )
    if _SHORT_CLUSTER.fullmatch(value) is None:
        return Problem(
            "a short flag may use only letters and digits after '-'",
            "give a flag shaped like -x or -xyz (attached values such as -o/tmp/x are refused)",
        )
    letter = next((char for char in word if char in _DANGEROUS_SHORT), None)
    if letter is not None:
        return Problem(
            f"the short option -{letter} {_DANGEROUS_SHORT[letter]}",
            _FLAG_REMEDY,
            hidden_rule="the flag contains a short option that can run code or write files",
        )
    return None


# --------------------------------------------------------------------------- regex, text, integer


def check_regex(value: str, _ctx: CheckContext) -> Problem | None:
    if value.startswith("-"):
        return leading_dash("a pattern (write '[-]x' to match a leading '-')")
    meta = _REGEX_METACHARACTERS.search(value)
    if meta is not None:
        return metacharacter(meta.group(), "regular expressions may use .*+?[](){}|^$\\ and ordinary text")
    if "../" in value:
        return Problem(
            "'../' is not allowed (it reads as a parent-directory path)",
            "write '\\.\\./' or '[.][.]/' to match those characters literally",
        )
    error = compile_error(value)
    if error is not None:
        return Problem(
            f"{CANNOT_COMPILE}: {error}",
            "give a valid regular expression such as 'error|warning'",
            hidden_rule=CANNOT_COMPILE,
        )
    return None


def check_text(value: str, _ctx: CheckContext) -> Problem | None:
    return leading_dash("text") if value.startswith("-") else None


_INTEGER = re.compile(r"[+-]?[0-9]+")


def check_integer(value: str, ctx: CheckContext) -> Problem | None:
    if _INTEGER.fullmatch(value) is None or len(value) > _MAX_INTEGER_DIGITS:
        return Problem(
            "the value is not a decimal integer",
            "give digits with an optional sign, such as '42' or '-7' (no spaces, '_' or 0x)",
        )
    number = int(value)
    low, high = ctx.constraint.minimum, ctx.constraint.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        return Problem(
            f"{number} is outside the allowed range {bounds}",
            f"give an integer in {bounds}",
            hidden_rule=f"the value is outside the allowed range {bounds}",
        )
    return None


def message(name: str, value: str, problem: Problem, *, sensitive: bool) -> str:
    if sensitive:
        shown = "(value not shown)"
        rule = problem.rule if problem.hidden_rule is None else problem.hidden_rule
    else:
        shown = f"({excerpt(value)})"
        rule = problem.rule
    return f"argument {name!r} {shown}: {rule}; {problem.remedy}"
