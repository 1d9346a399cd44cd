"""git: the global options, every subcommand's options, and which subcommands run at all (``check_git``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from trio_exec.paths import PathUse
from trio_exec.policies.scanner import (
    RUNS_VALUE,
    Arg,
    Context,
    Finish,
    Policy,
    Refusal,
    Rule,
    Scan,
    letters,
    path_rule,
    refuse,
    values,
)

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
    **dict.fromkeys(("upload-pack", "receive-pack", "exec"), refuse(RUNS_VALUE)),
    "exec-path": Rule(Arg.OPTIONAL, refuse_value="runs git programs from that directory"),
    "config-env": refuse(_GIT_CONFIG),
    "output": path_rule(PathUse.WRITE),
    "separate-git-dir": refuse(_GIT_SEPARATE),
}
_GIT_GLOBAL = Policy(
    long={
        **_GIT_COMMON,
        "config": refuse(_GIT_CONFIG),
        "git-dir": refuse("uses a repository whose configuration can name programs to run"),
        "bare": refuse("uses the directory as a repository explicitly, whatever wrote its configuration", Arg.NONE),
        "work-tree": path_rule(PathUse.INSIDE),
        **values("namespace super-prefix list-cmds attr-source"),
    },
    short={"c": refuse(_GIT_CONFIG), "C": path_rule(PathUse.INSIDE)},
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


_GIT_OUT_DIR = path_rule(PathUse.OUTPUT)
_GIT_WRITES = path_rule(PathUse.WRITE)
_GIT_SUBCOMMANDS: dict[str, Policy] = {
    "clone": _git_policy(
        long={
            "config": refuse(_GIT_CONFIG),
            "template": refuse("copies hooks and configuration from a template directory"),
            **values("origin branch depth reference reference-if-able shallow-since shallow-exclude jobs filter"),
        },
        short={"c": refuse(_GIT_CONFIG), "u": refuse(RUNS_VALUE), **letters("objs")},
        finish=_operands_are({1: PathUse.OUTPUT}, "clone directory"),
    ),
    "init": _git_policy(
        long={
            "template": refuse("copies hooks and configuration from a template directory"),
            **values("initial-branch object-format ref-format shared"),
        },
        short=letters("b"),
        finish=_operands_are({0: PathUse.OUTPUT}, "init directory"),
    ),
    "worktree": _git_policy(
        short=letters("bB"),
        long=values("reason"),
        finish=_git_worktree,
    ),
    "bundle": _git_policy(finish=_operands_are({0: PathUse.WRITE}, "bundle create file", after="create")),
    "checkout-index": _git_policy(long={"prefix": Rule(Arg.REQUIRED, check=_git_prefix)}),
    "pack-objects": _git_policy(
        finish=_git_pack_base,
        long=values("window depth window-memory max-pack-size threads compression filter"),
    ),
    "credential-store": _git_policy(long={"file": _GIT_WRITES}),
    "fast-export": _git_policy(long={"export-marks": _GIT_WRITES}),
    "fast-import": _git_policy(long={"export-marks": _GIT_WRITES, "export-pack-edges": _GIT_WRITES}),
    "index-pack": _git_policy(short={"o": _GIT_WRITES}),
    "mailsplit": _git_policy(short={"o": _GIT_OUT_DIR}),
    "mailinfo": _git_policy(finish=_operands_are({0: PathUse.WRITE, 1: PathUse.WRITE}, "mailinfo output")),
    "merge-file": _git_policy(short=letters("L"), finish=_operands_are({0: PathUse.WRITE}, "merge-file output")),
    "bugreport": _git_policy(short={"o": _GIT_OUT_DIR, **letters("s")}, long={"output-directory": _GIT_OUT_DIR}),
    "diagnose": _git_policy(short={"o": _GIT_OUT_DIR, **letters("s")}, long={"output-directory": _GIT_OUT_DIR}),
    "commit-graph": _git_policy(long={"object-dir": _GIT_OUT_DIR}),
    "multi-pack-index": _git_policy(long={"object-dir": _GIT_OUT_DIR}),
    **dict.fromkeys(
        ("upload-pack", "receive-pack", "upload-archive"),
        _git_policy(finish=_operands_are({0: PathUse.INSIDE}, "repository")),
    ),
    "apply": _git_policy(
        long={"unsafe-paths": refuse("writes files outside the working tree", Arg.NONE), **values("directory")}
    ),
    "ls-remote": _git_policy(short={"u": refuse(RUNS_VALUE)}, long=values("sort server-option")),
    "archive": _git_policy(short={"o": path_rule(PathUse.WRITE)}, long=values("remote prefix format add-file")),
    "grep": _git_policy(
        long={
            "open-files-in-pager": refuse("runs a pager program", Arg.OPTIONAL),
            **values("max-depth threads context after-context before-context max-count"),
        },
        short={"O": refuse("runs a pager program", Arg.OPTIONAL), **letters("efABCm")},
    ),
    "rebase": _git_policy(
        short={"x": refuse("runs a shell command after each commit"), **letters("sX")},
        long=values("onto strategy strategy-option"),
    ),
    "send-email": _git_policy(
        long={
            **dict.fromkeys(
                ("sendmail-cmd", "smtp-server-option", "to-cmd", "cc-cmd", "header-cmd"), refuse(RUNS_VALUE)
            ),
            "smtp-server": Rule(Arg.REQUIRED, check=_git_smtp_server),
            **values(
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
            "web": refuse("opens a web browser", Arg.NONE),
            **dict.fromkeys(("man", "info"), refuse("runs man or info, readers with shell escapes", Arg.NONE)),
        },
        short={
            "w": refuse("opens a web browser", Arg.NONE),
            **dict.fromkeys("mi", refuse("runs man or info, readers with shell escapes", Arg.NONE)),
        },
    ),
    "pull": _git_policy(short=letters("sX"), long=values("strategy strategy-option depth")),
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


def check_git(args: Sequence[str], ctx: Context) -> None:
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
