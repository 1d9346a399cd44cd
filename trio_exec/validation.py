"""Per-kind checks for placeholder values and path containment.

Job: decide, before any process exists, whether one agent-supplied value may become one argv element
(DESIGN.md §3). Program blacklisting lives in ``programs.py``; the path facts both modes share
(containment, ``PathPolicy``, special files) in ``paths.py``.

Invariants:
- Pure: no trio, no subprocess. The only OS access is ``os.path.realpath`` (which ``lstat``s and
  ``readlink``s) for path containment.
- A refusal is always ``Rejected(message, argument=name)``; the message names the argument, the rule and
  what would be accepted instead. For a sensitive argument no part of the value appears in it.
- Rules name specific syntax (a leading ``-``, a metacharacter, a ``..`` component, a flag name); nothing
  here matches a word inside ordinary text, so benign values are not over-blocked.
- Checks never rewrite a value: what was validated is exactly what reaches argv.
"""

from __future__ import annotations

import enum
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Literal
from urllib.parse import unquote

import attrs

from trio_exec.errors import Rejected
from trio_exec.paths import PathPolicy, is_within, special_file_kind
from trio_exec.regexes import CANNOT_COMPILE, compile_error, compile_regex
from trio_exec.text import excerpt

__all__ = [
    "MAX_ARGV",
    "MAX_VALUE_BYTES",
    "MIN_TIMEOUT_S",
    "Constraint",
    "Kind",
    "check_argv_length",
    "check_word_path",
    "is_sensitive",
    "kind_from_name",
    "validate_value",
]

MAX_VALUE_BYTES: int = 64 * 1024  # UTF-8 bytes, as mcp-secure-exec's MAX_ARG_LENGTH
MAX_ARGV: int = 256
MIN_TIMEOUT_S: float = 0.1  # the smallest per-call 'timeout' a client may ask for (the one place it is named)

_MAX_DECODE_ROUNDS = 5  # percent-decoding rounds, as mcp-secure-exec
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
class _Problem:
    """One broken rule. ``rule`` may quote the value; ``hidden_rule`` is used for sensitive arguments."""

    rule: str
    remedy: str
    hidden_rule: str | None = None


@attrs.frozen
class _Context:
    paths: PathPolicy
    constraint: Constraint


_Check = Callable[[str, _Context], "_Problem | None"]


# --------------------------------------------------------------------------- every kind

# Characters that change how text is displayed without being visible: a reviewer reading the audit
# log would not see what the program received (Trojan Source, CVE-2021-42574).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e")


def _char_problem(char: str, *, text: bool) -> str | None:
    """Why ``char`` may not appear in a value, or None. ``text`` allows newline and tab."""
    code = ord(char)
    if text and char in "\n\t":
        return None
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "control characters"
    if code < 0x7F:
        return None
    if char in _BIDI_CONTROLS:
        return "Unicode bidirectional controls"
    if char in _ZERO_WIDTH:
        return "zero-width characters"
    category = unicodedata.category(char)
    if category == "Cf":  # other invisible format characters, e.g. the U+E00xx "tag" characters
        return "invisible Unicode format characters"
    if category == "Cs":
        return "lone surrogates (not valid UTF-8)"
    if category in ("Zl", "Zp") and not text:
        return "Unicode line separators"
    return None


def _find_bad_char(value: str, *, text: bool = False) -> tuple[int, str, str] | None:
    if value.isascii() and value.isprintable():
        return None  # fast path: printable ASCII has none of the characters above
    for index, char in enumerate(value):
        reason = _char_problem(char, text=text)
        if reason is not None:
            return index, char, reason
    return None


def _check_common(value: str, *, text: bool) -> _Problem | None:
    if "\x00" in value:
        return _Problem("NUL bytes are not allowed", "remove the NUL character")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE_BYTES:
        return _Problem(
            f"the value is {size} bytes long, more than the limit of {MAX_VALUE_BYTES} bytes",
            "send a shorter value (or pass large input through stdin where the tool allows it)",
        )
    bad = _find_bad_char(value, text=text)
    if bad is not None:
        index, char, reason = bad
        allowed = " (newline and tab are fine)" if text else ""
        return _Problem(
            f"{reason} are not allowed{allowed}: U+{ord(char):04X} at position {index}",
            "remove the invisible or control character",
            hidden_rule=f"{reason} are not allowed{allowed}",
        )
    if value == "--":
        return _Problem(
            "the end-of-options marker '--' is not allowed",
            "give the value itself; the template decides where options end",
        )
    return None


def _check_max_length(value: str, constraint: Constraint) -> _Problem | None:
    if constraint.max_length is not None and len(value) > constraint.max_length:
        return _Problem(
            f"the value has {len(value)} characters, more than the limit of {constraint.max_length}",
            f"send at most {constraint.max_length} characters",
        )
    return None


def _check_choices(value: str, constraint: Constraint) -> _Problem | None:
    if constraint.enum is not None and value not in constraint.enum:
        return _Problem("the value is not one of the allowed values", _choices(constraint.enum))
    if constraint.pattern is not None and compile_regex(constraint.pattern).fullmatch(value) is None:
        return _Problem(
            f"the value does not match the pattern {constraint.pattern!r} set by the operator",
            "give a value that matches the whole pattern",
        )
    return None


def _choices(values: tuple[str, ...]) -> str:
    shown = ", ".join(repr(v) for v in values[:_MAX_LISTED_CHOICES])
    return f"use one of {shown}" + (", ..." if len(values) > _MAX_LISTED_CHOICES else "")


# --------------------------------------------------------------------------- shared syntax helpers

_PLAIN_METACHARACTERS = re.compile(r"[;|&$`()<>\\]")
_PATH_METACHARACTERS = re.compile(r"[;|&$`<>\\]")  # parentheses and spaces are ordinary in file names
_REGEX_METACHARACTERS = re.compile(r"[;&`<>]")
_SEPARATORS = re.compile(r"[/\\]")


def _has_dotdot(value: str) -> bool:
    """True if ``..`` is a whole path component ('a/../b', '../x', '..'), not part of a name ('a..b')."""
    return ".." in _SEPARATORS.split(value)


def _leading_dash(what: str) -> _Problem:
    return _Problem(
        "a leading '-' is not allowed (the program would read the value as an option)",
        f"give {what} that does not start with '-'",
    )


def _metacharacter(char: str, remedy: str) -> _Problem:
    return _Problem(
        f"the shell metacharacter {char!r} is not allowed",
        remedy,
        hidden_rule="shell metacharacters are not allowed",
    )


def _percent_decodings(value: str) -> tuple[list[str], bool]:
    """Successive percent-decodings of ``value`` (up to 5), and whether more encoding layers remain."""
    forms: list[str] = []
    current = value
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(current)
        if decoded == current:
            return forms, False
        forms.append(decoded)
        current = decoded
    return forms, unquote(current) != current


def _variants(value: str) -> tuple[list[tuple[str, str]], bool]:
    """Other readings of ``value``: percent-decoded and Unicode-normalised forms, with a label each.

    Programs, libraries and file systems may decode or normalise a value before using it, so every
    reading must be as harmless as the raw value.
    """
    decoded, too_deep = _percent_decodings(value) if "%" in value else ([], False)
    bases = [("", value)] + [("percent-decoded ", form) for form in decoded]
    seen = {value}
    variants: list[tuple[str, str]] = []
    for prefix, form in bases:
        candidates = [(f"{prefix}form", form)]
        if not form.isascii():  # normalisation never changes ASCII
            candidates += [(f"{prefix}{nf} form", unicodedata.normalize(nf, form)) for nf in _NORMAL_FORMS]
        for label, candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                variants.append((label, candidate))
    return variants, too_deep


_NORMAL_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")

_TOO_DEEP = _Problem(
    f"the value is percent-encoded more than {_MAX_DECODE_ROUNDS} times over",
    "send the value without percent-encoding",
)


def _traversal_in_variants(value: str) -> _Problem | None:
    """Refuse values whose decoded or normalised readings traverse, start at '/' or '~', or hide controls."""
    variants, too_deep = _variants(value)
    if too_deep:
        return _TOO_DEEP
    for label, form in variants:
        if _has_dotdot(form) or form.startswith(("/", "~", "\\")) or _find_bad_char(form) is not None:
            return _Problem(
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


def _check_plain(value: str, _ctx: _Context) -> _Problem | None:
    if value.startswith("-"):
        return _leading_dash("a value")
    meta = _PLAIN_METACHARACTERS.search(value)
    if meta is not None:
        return _metacharacter(meta.group(), "plain values may use letters, digits, spaces and .,:@%+=_/\"'")
    if value.startswith(("/", "~")):
        return _Problem(
            "a leading '/' or '~' is not allowed (plain values are not absolute or home paths)",
            "give a relative name such as 'example.txt'",
        )
    if _has_dotdot(value):
        return _Problem(
            "'..' path components are not allowed (they leave the working directory)",
            "give a name without '..' components such as 'example.txt' ('a..b' is fine)",
        )
    assignment = _ASSIGNMENT.match(value)
    if assignment is not None and _is_loader_variable(assignment.group(1)):
        return _Problem(
            f"assigning the loader/interpreter variable {assignment.group(1)} is not allowed",
            "NAME=value is accepted only for ordinary names such as 'key=value'",
            hidden_rule="assigning a loader/interpreter variable (NAME=value) is not allowed",
        )
    return _traversal_in_variants(value)


# --------------------------------------------------------------------------- path

_SYSTEM_DIRS = ("/proc", "/sys", "/dev")  # kernel interfaces: secrets (environ, mem) and devices

# Characters that look like '/' but are neither '/' nor normalised to it; refusing them keeps what a
# reviewer reads in the audit log equal to the path structure the kernel sees.
_SLASH_LOOKALIKES = frozenset("\u2044\u2215\u2216\u29f5\u29f8\u29f9")


def _path_remedy(policy: PathPolicy) -> str:
    if policy.validate_paths and policy.base_path is not None:
        return f"give a path inside {policy.base_path} such as 'subdir/file.txt'"
    return "give a path such as 'subdir/file.txt'"


def _check_path(value: str, ctx: _Context) -> _Problem | None:
    policy = ctx.paths
    remedy = _path_remedy(policy)
    if not value:
        return _Problem("an empty path is not allowed", remedy)
    if value.startswith("-"):
        return _leading_dash("a path (write './-name' for a file whose name starts with '-')")
    if value.startswith("~"):
        return _Problem(
            "a leading '~' is not allowed (many programs read it as a home directory)",
            "write './~name' for a file whose name starts with '~', or " + remedy,
        )
    meta = _PATH_METACHARACTERS.search(value)
    if meta is not None:
        return _metacharacter(meta.group(), "file names may use letters, digits, spaces, ()[]{}.,_+=@%")
    if _has_dotdot(value):
        return _Problem("'..' components are not allowed (they could leave the base path)", remedy)
    lookalike = next((char for char in value if char in _SLASH_LOOKALIKES), None)
    if lookalike is not None:
        return _Problem(
            f"U+{ord(lookalike):04X} looks like '/' but is not a separator",
            "use the ASCII '/' between directories",
            hidden_rule="characters that look like '/' are not allowed",
        )
    variants, too_deep = _variants(value)
    if too_deep:
        return _TOO_DEEP
    for label, form in variants:
        problem = _path_variant_problem(value, form, label)
        if problem is not None:
            return problem
    if not policy.validate_paths:
        return None
    for label, form in [("", value), *variants]:
        problem = _containment(form, policy, label, remedy)
        if problem is not None:
            return problem
    return None


def _path_variant_problem(raw: str, form: str, label: str) -> _Problem | None:
    """Refuse a decoded/normalised reading that is not the same path structure as the raw value."""
    plain_remedy = "send the plain path without percent-encoding or look-alike characters"
    if _find_bad_char(form) is not None or _PATH_METACHARACTERS.search(form) is not None:
        return _Problem(f"its {label} holds control, invisible or shell metacharacters", plain_remedy)
    if "\ufffd" in form and "\ufffd" not in raw:
        return _Problem(
            f"its {label} has percent-escapes that are not valid UTF-8 (overlong forms can hide '.' and '/')",
            plain_remedy,
        )
    raw_parts, form_parts = raw.split("/"), form.split("/")
    if len(raw_parts) != len(form_parts) or form.startswith("~"):
        rule = f"its {label} has a different directory structure (encoded or look-alike '/')"
        return _Problem(rule, plain_remedy)
    for raw_part, form_part in zip(raw_parts, form_parts, strict=True):
        if form_part in (".", "..") and raw_part != form_part:
            return _Problem(
                f"its {label} turns a name into '{form_part}' (encoded or look-alike dots)",
                plain_remedy,
            )
    return None


def _containment(
    path: str, policy: PathPolicy, label: str, remedy: str, relative_to: str | None = None
) -> _Problem | None:
    """Why ``path`` (one reading of a value, relative to ``relative_to`` or the base) is not confined, or None.

    The program follows symlinks, so the resolved path must be inside the base; ``/proc``, ``/sys`` and
    ``/dev`` are refused by the lexical and the resolved form. How this differs from shell_execute's confiner
    (``confinement.confine_file``), and why: ``paths.py``.
    """
    base = policy.base_path
    reading = f"its {label}" if label else "the path"
    if base is None and relative_to is None and not os.path.isabs(path):
        return _Problem(
            "relative paths need a base path, and none is set",
            "give an absolute path, or ask the operator to start trio-exec with --base-path",
        )
    start = relative_to or base
    candidate = path if start is None else os.path.join(start, path)  # join keeps an absolute path as is
    lexical = os.path.normpath(candidate)
    # realpath follows every symlink, also one followed by components that do not exist yet
    # (base/cfg -> ../outside, then 'cfg/newdir/x'), so mkdir -p style tools cannot escape either.
    try:
        resolved = os.path.realpath(candidate)
    except OSError as exc:  # e.g. EACCES reading /proc/1/root: what cannot be resolved cannot be confined
        return _Problem(f"{reading} cannot be resolved ({exc.strerror or type(exc).__name__})", remedy)
    if base is not None and not is_within(resolved, base):
        return _Problem(f"{reading} resolves outside the base path {base} (symlinks are followed)", remedy)
    # The lexical form matters too: /proc/self/... means the server to realpath but the child to the kernel.
    for location in (lexical, resolved):
        inside_base = base is not None and is_within(location, base)
        system = next((d for d in _SYSTEM_DIRS if is_within(location, d)), None)
        if system is not None and not inside_base:
            rule = f"{reading} is under {system} (kernel and device files)"
            return _Problem(rule, f"{remedy}, not under {system}")
    if not policy.special_files:
        return _special_file(resolved, reading, remedy)
    return None


def _special_file(resolved: str, reading: str, remedy: str) -> _Problem | None:
    """Refuse an existing path that is neither a regular file nor a directory (FIFO, socket, device)."""
    what = special_file_kind(resolved)
    if what is None:
        return None
    return _Problem(
        f"{reading} is {what}, not a regular file or directory (reading it could hang the command)",
        f"{remedy}; the operator can allow special files for this tool with special_files = true",
    )


def check_word_path(
    name: str,
    value: str,
    word: str,
    readings: Sequence[str],
    *,
    paths: PathPolicy,
    relative_to: str | None = None,
    sensitive: bool = False,
) -> None:
    """Confine a rendered argv word that holds a path placeholder's value and other text.

    The program opens the whole word (``{file}.txt``, ``data/{file}``) or its tail after an option's ``=``
    (``--out={file}``), not the value alone; each of ``readings`` (and its decoded forms) must pass the same
    containment, system-directory and special-file rules as a lone path value. Raises ``Rejected``.
    """
    if not paths.validate_paths:
        return
    remedy = _path_remedy(paths)
    for reading in readings:
        if paths.base_path is None and relative_to is None and not os.path.isabs(reading):
            continue  # nothing to confine a relative word to; the value alone was checked (and is absolute)
        variants, _too_deep = _variants(reading)
        for label, form in [("", reading), *variants]:
            problem = _containment(form, paths, label, remedy, relative_to)
            if problem is not None:
                rule = f"in the word {excerpt(word)} {problem.rule}"
                hidden = f"in the word it is part of, {problem.hidden_rule or problem.rule}"
                raise Rejected(
                    _message(name, value, _Problem(rule, problem.remedy, hidden_rule=hidden), sensitive=sensitive),
                    argument=name,
                )


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


def _check_flag(value: str, _ctx: _Context) -> _Problem | None:
    if value.startswith("--"):
        return _check_long_flag(value)
    if value.startswith("-"):
        return _check_short_flag(value)
    return _Problem("a flag must start with '-'", "give a flag shaped like -x, -xyz, --long or --long=value")


def _check_long_flag(value: str) -> _Problem | None:
    name, has_value, argument = value.partition("=")
    if _LONG_NAME.fullmatch(name) is None:
        return _Problem(
            "a long flag name may use only letters, digits, '-' and '_'",
            "give a flag shaped like --long or --long=value",
        )
    option = _dangerous_long(name)
    if option is not None:
        spelled = "" if option == name.lower() else f" abbreviates {option}, which"
        return _Problem(
            f"the option {name}{spelled} {_DANGEROUS_LONG[option]}",
            _FLAG_REMEDY,
            hidden_rule=f"the flag names an option that {_DANGEROUS_LONG[option]}",
        )
    if has_value:
        if _FLAG_VALUE.fullmatch(argument) is None:
            return _Problem(
                "a flag value may use only letters, digits and .,:@%+=/*-_",
                "give a simpler value, or ask the operator for a separate placeholder",
            )
        if argument.startswith("/") or _has_dotdot(argument) or _traversal_in_variants(argument) is not None:
            return _Problem(
                "a flag value may not be an absolute path or contain '..' components",
                "give a relative value such as --name=subdir/file.txt",
            )
    return None


def _check_short_flag(value: str) -> _Problem | None:
    word = value[1:]
    option = re.split(r"[=:]", word, maxsplit=1)[0]
    java_agent = word.lower().startswith(_DANGEROUS_SINGLE_DASH_PREFIXES)
    if option.lower() in _DANGEROUS_SINGLE_DASH_WORDS or java_agent:
        return _Problem(
            f"the option -{option} runs code or changes files (find, java)",
            _FLAG_REMEDY,
            hidden_rule="find actions and JVM agents are not allowed",
        )
    if _SHORT_CLUSTER.fullmatch(value) is None:
        return _Problem(
            "a short flag may use only letters and digits after '-'",
            "give a flag shaped like -x or -xyz (attached values such as -o/tmp/x are refused)",
        )
    letter = next((char for char in word if char in _DANGEROUS_SHORT), None)
    if letter is not None:
        return _Problem(
            f"the short option -{letter} {_DANGEROUS_SHORT[letter]}",
            _FLAG_REMEDY,
            hidden_rule="the flag contains a short option that can run code or write files",
        )
    return None


# --------------------------------------------------------------------------- regex, text, integer


def _check_regex(value: str, _ctx: _Context) -> _Problem | None:
    if value.startswith("-"):
        return _leading_dash("a pattern (write '[-]x' to match a leading '-')")
    meta = _REGEX_METACHARACTERS.search(value)
    if meta is not None:
        return _metacharacter(meta.group(), "regular expressions may use .*+?[](){}|^$\\ and ordinary text")
    if "../" in value:
        return _Problem(
            "'../' is not allowed (it reads as a parent-directory path)",
            "write '\\.\\./' or '[.][.]/' to match those characters literally",
        )
    error = compile_error(value)
    if error is not None:
        return _Problem(
            f"{CANNOT_COMPILE}: {error}",
            "give a valid regular expression such as 'error|warning'",
            hidden_rule=CANNOT_COMPILE,
        )
    return None


def _check_text(value: str, _ctx: _Context) -> _Problem | None:
    return _leading_dash("text") if value.startswith("-") else None


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _check_integer(value: str, ctx: _Context) -> _Problem | None:
    if _INTEGER.fullmatch(value) is None or len(value) > _MAX_INTEGER_DIGITS:
        return _Problem(
            "the value is not a decimal integer",
            "give digits with an optional sign, such as '42' or '-7' (no spaces, '_' or 0x)",
        )
    number = int(value)
    low, high = ctx.constraint.minimum, ctx.constraint.maximum
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"{'-inf' if low is None else low}..{'inf' if high is None else high}"
        return _Problem(
            f"{number} is outside the allowed range {bounds}",
            f"give an integer in {bounds}",
            hidden_rule=f"the value is outside the allowed range {bounds}",
        )
    return None


_KIND_CHECKS: dict[Kind, _Check | None] = {
    Kind.PLAIN: _check_plain,
    Kind.PATH: _check_path,
    Kind.FLAG: _check_flag,
    Kind.REGEX: _check_regex,
    Kind.TEXT: _check_text,
    Kind.INTEGER: _check_integer,
    Kind.ENUM: None,  # membership is the constraint check
}


# --------------------------------------------------------------------------- public entry points

# Frozen, so sharing one default instance is safe.
_NO_BASE_PATH = PathPolicy()
_NO_CONSTRAINT = Constraint()


def validate_value(
    name: str,
    kind: Kind,
    value: str,
    *,
    paths: PathPolicy = _NO_BASE_PATH,
    constraint: Constraint = _NO_CONSTRAINT,
    sensitive: bool = False,
) -> None:
    """Raise ``Rejected(message, argument=name)`` on the first broken rule; return None when fine.

    Order: rules for every kind, the operator's max_length, the kind's own rules, then enum and pattern.
    """
    if kind is Kind.ENUM and constraint.enum is None:
        raise ValueError(f"placeholder {name!r} has kind 'enum' but no enum values")
    problem = _check_common(value, text=kind is Kind.TEXT) or _check_max_length(value, constraint)
    check = _KIND_CHECKS[kind]
    if problem is None and check is not None:
        problem = check(value, _Context(paths, constraint))
    if problem is None:
        problem = _check_choices(value, constraint)
    if problem is not None:
        raise Rejected(_message(name, value, problem, sensitive=sensitive), argument=name)


def _message(name: str, value: str, problem: _Problem, *, sensitive: bool) -> str:
    if sensitive:
        shown = "(value not shown)"
        rule = problem.rule if problem.hidden_rule is None else problem.hidden_rule
    else:
        shown = f"({excerpt(value)})"
        rule = problem.rule
    return f"argument {name!r} {shown}: {rule}; {problem.remedy}"


def check_argv_length(argv: Sequence[str]) -> None:
    """Refuse a rendered command line with more than MAX_ARGV elements."""
    if len(argv) > MAX_ARGV:
        raise Rejected(
            f"the command would have {len(argv)} arguments, more than the limit of {MAX_ARGV}; pass fewer",
            argument=None,
        )


def is_sensitive(name: str, sensitive_keys: Iterable[str]) -> bool:
    """True if any non-empty key occurs in ``name``, case-insensitively (``api_token`` matches ``token``)."""
    lowered = name.lower()
    return any(key.strip().lower() in lowered for key in sensitive_keys if key.strip())
