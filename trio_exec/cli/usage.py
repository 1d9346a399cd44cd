"""The docopt usage text, generated from ``OPTIONS``, and the one-line reading of a refused command line."""

from __future__ import annotations

from collections.abc import Sequence

from trio_exec.cli.options import OPTIONS
from trio_exec.config import did_you_mean


def usage() -> str:
    """The docopt usage text, generated from ``OPTIONS``."""
    repeated = " ".join(f"[{o.long} {o.metavar}]..." for o in OPTIONS if o.repeat)
    lines = []
    for o in OPTIONS:
        flag = f"{o.short}, {o.long}" if o.short else f"    {o.long}"
        if o.metavar:
            flag += f" {o.metavar}"
        extra = f" [env {o.env}]"
        if o.shown_default is not None or (o.default not in (None, False, ())):
            extra += f" (default: {o.shown_default if o.shown_default is not None else o.default})"
        lines.append(f"  {flag:<34}  {o.help}{extra}")
    return (
        "trio-exec: a secure command-execution MCP server on trio.\n\n"
        "Usage:\n"
        f"  trio-exec [options] {repeated}\n"
        f"  trio-exec doctor [options] {repeated}\n"
        "  trio-exec (-h | --help)\n"
        "  trio-exec (-V | --version)\n\n"
        "Options:\n"
        "  -h, --help                          Show this help and exit.\n"
        "  -V, --version                       Show the version and exit.\n" + "\n".join(lines) + "\n\n"
        "Precedence: command line > environment > config file [server] > default.\n"
        "trio-exec doctor: which sandbox layer is active and why the others are not, with a live self-test.\n"
    )


def command_line_problem(argv: Sequence[str], docopt_says: str) -> str:
    """Which word of a command line docopt refused, and why, in one line (an unknown option with the
    option it most likely meant, a value missing, a stray word)."""
    by_flag = {o.long: o for o in OPTIONS} | {o.short: o for o in OPTIONS if o.short}
    known = {*by_flag, "-h", "--help", "-V", "--version"}
    words = list(argv)
    i = 1 if words[:1] == ["doctor"] else 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        flag = word.split("=", 1)[0] if word.startswith("--") else word[:2]
        if not word.startswith("-") or word == "-":
            return f"unexpected argument {word!r}: options start with '--' (a tool spec goes after --cmd)"
        matches = [k for k in known if k == flag or (flag.startswith("--") and k.startswith(flag))]
        if not matches:
            return f"unknown option {flag}{did_you_mean(flag, known)}"
        option = by_flag.get(matches[0]) if len(matches) == 1 else by_flag.get(flag)
        inline = "=" in word if word.startswith("--") else len(word) > 2
        if option is not None and option.metavar is not None and not inline:
            if i >= len(words):
                return f"option {option.long} needs a value ({option.metavar})"
            i += 1
    return docopt_says.splitlines()[0] if docopt_says.strip() else "invalid command line"
