"""Command templates: spec grammar, placeholders, JSON schemas, rendering to argv.

PURE: no trio, no processes. ``NAME|"TEMPLATE"`` specs are split with POSIX shell-word
rules (``shlex``), never expanded and never given to a shell. Token 0 is the program,
resolved once at startup to an absolute path that is then pinned. Every other token yields
exactly one argv element whatever the placeholder values hold. ``{{`` and ``}}`` are
literal braces.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
from collections.abc import Mapping
from typing import Any, Union

import attrs

from trio_exec.config import ArgSpec, ToolSpec
from trio_exec.errors import ConfigError, Rejected, SpawnFailed
from trio_exec.paths import PathPolicy
from trio_exec.programs import blacklist_match
from trio_exec.validation import check_argv_length, check_word_path, is_sensitive, validate_value
from trio_exec.values import MAX_VALUE_BYTES, MIN_TIMEOUT_S, Constraint, Kind, kind_from_name

TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What is left of a word once {{, }} and every {name} are taken out, and still looks like a placeholder meant:
# a name that is not one ({1bad}, {my-arg}), an opening brace never closed ({message at the end of the word),
# a closing brace never opened (message} at its start). Other braces stay literal: '{print $1}' in awk, and
# a regular expression's {3} (digits alone are a repeat count, never a name).
_MISTAKES = (
    (re.compile(r"\{((?![0-9]+\})[A-Za-z0-9_-]+)\}"), "{{{}}} is not a placeholder: a name starts with a letter or "
     "'_' and has only letters, digits and '_'"),
    (re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)$"), "{{{} has no closing '}}'"),
    (re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\}"), "{}}} has no opening '{{'"),
)  # fmt: skip
RESERVED = frozenset({"timeout", "stdin", "background", "wait_s"})  # every tool has them, or may


@attrs.frozen
class Placeholder:
    """A ``{name}`` inside a token."""

    name: str


Part = Union[str, Placeholder]  # noqa: UP007 - attrs/mypy on 3.10 need the Union spelling here
Token = tuple[Part, ...]


@attrs.frozen
class Arg:
    """A placeholder as published: its kind, constraint and schema fragment."""

    name: str
    kind: Kind
    description: str | None
    constraint: Constraint
    default: str | None
    sensitive: bool


@attrs.frozen
class Template:
    """A compiled template tool, ready to render."""

    spec: ToolSpec
    program: str  # what the template names (token 0)
    program_path: str | None  # the pinned absolute path; None only with --allow-missing-binaries
    tokens: tuple[Token, ...]  # tokens 1..n
    args: tuple[Arg, ...]

    @property
    def name(self) -> str:
        return self.spec.name


@attrs.frozen
class Context:
    """What rendering needs from the settings."""

    paths: PathPolicy
    blacklist: tuple[str, ...]
    allow_dangerous: bool
    allow_missing_binaries: bool
    search_path: str
    sensitive_keys: tuple[str, ...] = ()


def parse_specs(text: str, source: str) -> list[tuple[str, str]]:
    """Split ``name|"template"; name2|"template 2"`` into (name, template) pairs.

    A ``;`` inside the double-quoted template does not end it; ``\\"`` inside it is a quote.
    """
    specs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;":
            i += 1
        if i >= n:
            break
        bar = text.find("|", i)
        if bar < 0:
            raise ConfigError(f'{source}: {text[i:]!r} is not NAME|"TEMPLATE"')
        name = text[i:bar].strip()
        j = bar + 1
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == '"':
            out: list[str] = []
            j += 1
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n and text[j + 1] == '"':
                    j += 1
                out.append(text[j])
                j += 1
            if j >= n:
                raise ConfigError(f"{source}: the template of {name!r} has no closing double quote")
            template = "".join(out)
            j += 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] != ";":
                raise ConfigError(f"{source}: unexpected text after the template of {name!r}; separate specs with ';'")
        else:
            end = text.find(";", j)
            end = n if end < 0 else end
            template = text[j:end].strip()
            j = end
        specs.append((name, template))
        i = j + 1
    return specs


def _parse_token(token: str) -> Token:
    # A brace that is not part of {name}, {{ or }} stays literal ('{print $1}' in awk).
    parts: list[Part] = []
    pos = 0
    literal = ""
    for m in _PLACEHOLDER_RE.finditer(token):
        literal += token[pos : m.start()]
        if m.group(1) is None:
            literal += m.group(0)[0]
        else:
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(Placeholder(m.group(1)))
        pos = m.end()
    literal += token[pos:]
    if literal:
        parts.append(literal)
    return tuple(parts)


def resolve_program(program: str, search_path: str) -> str | None:
    """The absolute path of an executable program, or None if there is none."""
    if "/" in program:
        path = os.path.abspath(program)
        return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
    found = shutil.which(program, path=search_path)
    return os.path.abspath(found) if found else None


def compile_tool(spec: ToolSpec, ctx: Context) -> Template:
    """Parse, check and pin one tool; every problem is a ``ConfigError``."""
    where = f"{spec.source}: tool {spec.name!r}"
    if not TOOL_NAME_RE.fullmatch(spec.name):
        raise ConfigError(f"{where}: a tool name is 1-64 characters of letters, digits, '_' and '-'")
    words = _split_template(spec.template, where)
    tokens = tuple(_parse_token(w) for w in words[1:])
    names = _placeholder_names(tokens, spec, where)
    if spec.cwd is not None and not (os.path.isabs(spec.cwd) and os.path.isdir(spec.cwd)):
        raise ConfigError(f"{where}: cwd {spec.cwd!r} must be an existing absolute directory")
    path = resolve_program(words[0], ctx.search_path)
    if path is None and not ctx.allow_missing_binaries:
        raise ConfigError(
            f"{where}: program {words[0]!r} is not installed or not executable (searched {ctx.search_path}); "
            "install it, give an absolute path, or pass --allow-missing-binaries"
        )
    if path is not None:
        check_program(path, ctx, where)
    args = tuple(_arg(name, spec.args.get(name, ArgSpec()), ctx) for name in names)
    _check_shared_words(tokens, {a.name: a.kind for a in args}, where)
    return Template(spec=spec, program=words[0], program_path=path, tokens=tokens, args=args)


def _split_template(template: str, where: str) -> list[str]:
    """The template's words (shell-like quoting, no shell): a program without placeholders, then its arguments,
    none with a brace mistake."""
    try:
        words = shlex.split(template, comments=False, posix=True)
    except ValueError as e:
        raise ConfigError(f"{where}: cannot split the template: {e}") from None
    if not words:
        raise ConfigError(f"{where}: the template is empty")
    if _PLACEHOLDER_RE.search(words[0]):
        raise ConfigError(f"{where}: the program (first word) cannot contain a placeholder")
    for word in words[1:]:
        rest = _PLACEHOLDER_RE.sub(" ", word)
        for pattern, problem in _MISTAKES:
            if m := pattern.search(rest):
                raise ConfigError(
                    f"{where}: in {word!r}, {problem.format(m.group(1))}; write {{{{ and }}}} for literal braces"
                )
    return words


def _placeholder_names(tokens: tuple[Token, ...], spec: ToolSpec, where: str) -> list[str]:
    """The placeholders in order of first use; none reserved, and every configured ``args.<name>`` used."""
    names: list[str] = []
    for token in tokens:
        for part in token:
            if isinstance(part, Placeholder) and part.name not in names:
                names.append(part.name)
    for name in names:
        if name in RESERVED:
            raise ConfigError(
                f"{where}: {{{name}}} is reserved (a tool may take a '{name}' argument of its own); rename it"
            )
    for name in spec.args:
        if name not in names:
            raise ConfigError(f"{where}: args.{name} is configured but the template has no {{{name}}}")
    return names


def _check_shared_words(tokens: tuple[Token, ...], kinds: Mapping[str, Kind], where: str) -> None:
    """Refuse a word with two path placeholders: no one path can be confined when two values build it."""
    for token in tokens:
        in_word = [p.name for p in token if isinstance(p, Placeholder) and kinds[p.name] is Kind.PATH]
        if len(in_word) > 1:
            shown = render_token(token, None)
            raise ConfigError(
                f"{where}: the word {shown!r} joins the path placeholders {{{in_word[0]}}} and {{{in_word[1]}}}; "
                "two values cannot be confined as one path: use one path placeholder per word "
                "(e.g. {path} alone), or give the others another kind in the config file"
            )


def _arg(name: str, spec: ArgSpec, ctx: Context) -> Arg:
    return Arg(
        name=name,
        kind=spec.kind or kind_from_name(name),
        description=spec.description,
        constraint=spec.constraint,
        default=spec.default,
        sensitive=is_sensitive(name, ctx.sensitive_keys),
    )


def check_program(path: str, ctx: Context, where: str) -> None:
    """Refuse a blacklisted program unless --allow-dangerous."""
    if ctx.allow_dangerous:
        return
    hit = blacklist_match(path, ctx.blacklist)
    if hit is not None:
        raise ConfigError(
            f"{where}: program {path} is blacklisted ({hit!r}); use --allow-dangerous only if you accept "
            f"that an agent may run it, or remove it from --blacklist"
        )


# Text kinds a client may fill with a JSON number (or boolean): both Inspectors send `seconds=2` as the number 2,
# and models do the same. Such a value becomes its canonical text (``as_text``) before anything checks it.
NUMBER_KINDS = frozenset({Kind.PLAIN, Kind.TEXT, Kind.REGEX, Kind.FLAG})
BOOLEAN_KINDS = frozenset({Kind.PLAIN, Kind.TEXT})


def as_text(value: object, *, booleans: bool = False) -> str | None:
    """The canonical text of a JSON number (or, with ``booleans``, a boolean) given for text; None otherwise.

    ``2`` and ``2.0`` are ``"2"`` (never ``"2.0"``), other numbers are the shortest spelling that reads
    back the same (``"0.5"``, ``"1e+20"``), booleans JSON's ``"true"``/``"false"``. A NaN, an infinity or
    an integer of 100 digits or more is left as it is, for the checks that refuse it.
    """
    if isinstance(value, bool):
        return ("true" if value else "false") if booleans else None
    if isinstance(value, int):
        return str(value) if abs(value) < _MAX_INTEGER else None
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return None


def text_arguments(t: Template, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` with the numbers (and booleans) given for text placeholders as their canonical text."""
    kinds = {a.name: a.kind for a in t.args if a.kind in NUMBER_KINDS and a.constraint.enum is None}
    out = dict(arguments)
    for name, kind in kinds.items():
        if name in out and (text := as_text(out[name], booleans=kind in BOOLEAN_KINDS)) is not None:
            out[name] = text
    return out


def other_json_types(*, booleans: bool) -> list[dict[str, str]]:
    """The ``anyOf`` branches beside a text one: single-``type`` branches, which every client's schema dialect
    reads (a ``type`` list is legal JSON Schema but not portable: Gemini's OpenAPI subset rejects it)."""
    return [{"type": "number"}, *([{"type": "boolean"}] if booleans else [])]


def input_schema(t: Template, *, max_timeout_s: float, stdin: bool, published: bool = True) -> dict[str, Any]:
    """The JSON schema of a tool's arguments (all placeholders required unless defaulted).

    The published schema lets text placeholders take numbers (and booleans) too; the server validates
    against the strict one (``published=False``) once ``text_arguments`` has turned those into text.
    """
    props: dict[str, Any] = {}
    for a in t.args:
        prop: dict[str, Any]
        if a.kind is Kind.INTEGER:
            prop = {"type": "integer"}
            if a.constraint.minimum is not None:
                prop["minimum"] = a.constraint.minimum
            if a.constraint.maximum is not None:
                prop["maximum"] = a.constraint.maximum
        else:
            prop = {"type": "string", "maxLength": a.constraint.max_length or MAX_VALUE_BYTES}
            if a.constraint.enum is not None:
                prop["enum"] = list(a.constraint.enum)
            if a.constraint.pattern is not None:
                prop["pattern"] = f"^(?:{a.constraint.pattern})$"
            if published and a.kind in NUMBER_KINDS and a.constraint.enum is None:
                prop = {"anyOf": [prop, *other_json_types(booleans=a.kind in BOOLEAN_KINDS)]}
        prop["description"] = a.description or _kind_help(a.kind)
        if a.default is not None:
            prop["default"] = int(a.default) if a.kind is Kind.INTEGER else a.default
        props[a.name] = prop
    props["timeout"] = {
        "type": "number",
        "minimum": MIN_TIMEOUT_S,
        "maximum": max_timeout_s,
        "description": f"Seconds before the command is stopped ({MIN_TIMEOUT_S:g} to {max_timeout_s:g}).",
    }
    if stdin:
        props["stdin"] = {"type": "string", "description": "Text written to the command's standard input."}
    return {
        "type": "object",
        "properties": props,
        "required": [a.name for a in t.args if a.default is None],
        "additionalProperties": False,
    }


_KIND_HELP = {
    Kind.PLAIN: "Plain value: no shell metacharacters, no leading '-', no '/' or '~' at the start, no '..'.",
    Kind.PATH: "A file system path (inside the base path when one is set).",
    Kind.FLAG: "A command-line flag such as -h or --verbose (dangerous flags are refused).",
    Kind.REGEX: "A regular expression (Python syntax).",
    Kind.TEXT: "Free text (must not start with '-').",
    Kind.INTEGER: "An integer.",
    Kind.ENUM: "One of the listed values.",
}


def _kind_help(kind: Kind) -> str:
    return _KIND_HELP[kind]


def describe(t: Template) -> str:
    """The tool description shown to agents: the operator's text and the template itself."""
    shown = " ".join([shlex.quote(t.program), *(_show(tok) for tok in t.tokens)])
    head = t.spec.description or f"Run `{t.program}` with the given arguments."
    return f"{head}\nRuns: {shown}"


def _show(token: Token) -> str:
    # Placeholders are shown as {name}; quote the word only when its literal text needs it.
    plain = all(isinstance(p, Placeholder) or shlex.quote(p) == p for p in token)
    return render_token(token, None) if plain and token else shlex.quote(render_token(token, None))


def render_token(token: Token, values: Mapping[str, str] | None) -> str:
    return "".join(p if isinstance(p, str) else (f"{{{p.name}}}" if values is None else values[p.name]) for p in token)


def render(t: Template, arguments: Mapping[str, Any], ctx: Context) -> tuple[str, ...]:
    """Validate every placeholder value and render argv; raises ``Rejected``/``SpawnFailed``."""
    paths = attrs.evolve(ctx.paths, special_files=True) if t.spec.special_files else ctx.paths
    values: dict[str, str] = {}
    for a in t.args:
        raw = arguments.get(a.name, a.default)
        value = _text_of(a, raw)
        validate_value(a.name, a.kind, value, paths=paths, constraint=a.constraint, sensitive=a.sensitive)
        base = paths.base_path
        if a.kind is Kind.PATH and base and t.spec.cwd and not os.path.isabs(value):
            # Validated against the base path, so it must mean the same there: the tool runs elsewhere.
            value = os.path.join(base, value)
        values[a.name] = value
    by_name = {a.name: a for a in t.args}
    argv: list[str] = []
    for token in t.tokens:
        element = render_token(token, values)
        first = token[0]
        # A value that starts an argv element must not turn it into an option.
        if isinstance(first, Placeholder) and by_name[first.name].kind is not Kind.FLAG and element.startswith("-"):
            raise Rejected(
                f"argument '{first.name}': the value would start a command-line option (leading '-'); "
                "pass a value that does not begin with '-'",
                argument=first.name,
            )
        if len(token) > 1:
            _check_word(token, values, by_name, paths, t.spec.cwd or paths.base_path)
        argv.append(element)
    check_argv_length(argv)
    return (program_for_call(t, ctx), *argv)


_MAX_INTEGER = 10**100  # str() of a far larger int raises; no option takes such a number


def _text_of(a: Arg, raw: Any) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= _MAX_INTEGER:
        raise Rejected(f"argument {a.name!r}: the number is too large; give an integer below 10**100", argument=a.name)
    return str(raw)


_OPTION_VALUE_STARTS = "=:,"  # --out=FILE, host:FILE, a,FILE: a program may open only the part after one


def _check_word(
    token: Token, values: Mapping[str, str], args: Mapping[str, Arg], paths: PathPolicy, cwd: str | None
) -> None:
    """A path value that shares its word with other text is confined as the program opens it: the word."""
    for index, part in enumerate(token):
        if not (isinstance(part, Placeholder) and args[part.name].kind is Kind.PATH):
            continue
        head = render_token(token[:index], values)
        tail = values[part.name] + render_token(token[index + 1 :], values)
        readings = [head + tail] + [head[i + 1 :] + tail for i, c in enumerate(head) if c in _OPTION_VALUE_STARTS]
        arg = args[part.name]
        check_word_path(
            part.name, values[part.name], head + tail, readings, paths=paths, relative_to=cwd, sensitive=arg.sensitive
        )


def program_for_call(t: Template, ctx: Context) -> str:
    """The pinned program; with --allow-missing-binaries, resolved (and checked) now."""
    if t.program_path is not None:
        return t.program_path
    path = resolve_program(t.program, ctx.search_path)
    if path is None:
        raise SpawnFailed(f"program {t.program!r} is not installed (it was missing at startup too)")
    try:
        check_program(path, ctx, f"tool {t.name!r}")
    except ConfigError as e:
        raise SpawnFailed(e.message) from None
    return path
