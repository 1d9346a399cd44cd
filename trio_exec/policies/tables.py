"""The small per-program tables: tar, sort, split, rg, make, du/wc, sdiff, diff3, wget, zip and find."""

from __future__ import annotations

import re
from collections.abc import Sequence

from trio_exec.paths import PathUse
from trio_exec.policies.scanner import (
    OPTIONAL,
    READS_NAMES,
    RUNS_VALUE,
    Arg,
    Context,
    Policy,
    Refusal,
    Rule,
    Scan,
    letters,
    path_rule,
    refuse,
    resolve_long,
    values,
)

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
            refuse(RUNS_VALUE),
        ),
        "absolute-names": refuse("lets extraction write outside the target directory", Arg.NONE),
        "files-from": refuse(_TAR_READS_NAMES),
        "file": _TAR_ARCHIVE,
        "directory": path_rule(PathUse.INSIDE),
        **dict.fromkeys(("listed-incremental", "index-file", "volno-file"), path_rule(PathUse.WRITE)),
        "checkpoint": OPTIONAL,
        **values(
            "exclude exclude-from transform xform blocking-factor record-size format label newer "
            "after-date newer-mtime owner group mode mtime starting-file strip-components suffix tape-length "
            "exclude-tag exclude-tag-under exclude-tag-all warning quoting-style quote-chars no-quote-chars "
            "owner-map group-map pax-option level sort hole-detection sparse-version"
        ),
    },
    short={
        "f": _TAR_ARCHIVE,
        "C": path_rule(PathUse.INSIDE),
        "g": path_rule(PathUse.WRITE),
        "F": refuse(RUNS_VALUE),
        "I": refuse(RUNS_VALUE),
        "P": refuse("lets extraction write outside the target directory", Arg.NONE),
        "T": refuse(_TAR_READS_NAMES),
        **letters("bHKLNVX"),
    },
    old_style=True,
)  # fmt: skip
# Letters whose value is the rest of the word in GNU tar and in bsdtar alike (bsdtar's -I is -T).
_TAR_VALUE_EVERYWHERE = frozenset("bCfITX")


def check_tar(args: Sequence[str], ctx: Context) -> None:
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


SORT = Policy(
    long={
        "compress-program": refuse(RUNS_VALUE),
        "files0-from": refuse(READS_NAMES),
        "output": path_rule(PathUse.WRITE),
        "check": OPTIONAL,
        **values("random-source sort batch-size key buffer-size field-separator temporary-directory parallel"),
    },
    short={"o": path_rule(PathUse.WRITE), **letters("kSTt")},
)


def _split_finish(scan: Scan, ctx: Context) -> None:
    if len(scan.operands) >= 2:  # split [FILE [PREFIX]]: output files are named PREFIXaa, PREFIXab, ...
        ctx.confine(scan.operands[1][1], PathUse.INSIDE, "split output prefix")


SPLIT = Policy(
    long={
        "filter": refuse("runs a shell command for every output file"),
        "numeric-suffixes": OPTIONAL,
        "hex-suffixes": OPTIONAL,
        **values("additional-suffix bytes line-bytes lines number separator suffix-length"),
    },
    short=letters("abClnt"),
    finish=_split_finish,
)

RG = Policy(
    long={
        "pre": refuse("runs a preprocessor program on every file searched"),
        "hostname-bin": refuse(RUNS_VALUE),
        **values(
            "pre-glob regexp file glob iglob type type-not type-add type-clear max-count after-context "
            "before-context context threads max-columns replace encoding max-depth max-filesize ignore-file "
            "path-separator colors color sort sortr dfa-size-limit regex-size-limit context-separator "
            "field-context-separator field-match-separator engine generate hyperlink-format"
        ),
    },
    short=letters("efgtTmABCjMrEd"),
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
MAKE = Policy(
    long={
        "file": _MAKE_FILE,
        "makefile": _MAKE_FILE,
        "directory": path_rule(PathUse.INSIDE),
        "eval": refuse("evaluates its value as makefile text, which can run shell commands"),
        **dict.fromkeys(("jobs", "load-average", "output-sync", "debug", "shuffle"), OPTIONAL),
        **values("include-dir old-file assume-old what-if new-file assume-new jobserver-style jobserver-auth"),
    },
    short={
        "f": _MAKE_FILE,
        "C": path_rule(PathUse.INSIDE),
        "E": refuse("evaluates its value as makefile text, which can run shell commands"),
        "j": OPTIONAL,
        "l": OPTIONAL,
        "O": OPTIONAL,
        **letters("IoW"),
    },
    finish=_make_finish,
)

FILES0_ONLY = Policy(long={"files0-from": refuse(READS_NAMES)})  # du, wc: catches --f= abbreviations
SDIFF = Policy(
    long={"diff-program": refuse(RUNS_VALUE), "output": path_rule(PathUse.WRITE)},
    short={"o": path_rule(PathUse.WRITE)},
)
DIFF3 = Policy(long={"diff-program": refuse(RUNS_VALUE)})
WGET = Policy(  # -e runs .wgetrc commands such as use_askpass=PROGRAM
    long={
        "use-askpass": refuse(RUNS_VALUE),
        "execute": refuse("runs a .wgetrc command (use_askpass runs programs)"),
    },
    short={"e": refuse("runs a .wgetrc command (use_askpass runs programs)")},
)


def check_zip(args: Sequence[str], _ctx: Context) -> None:
    """zip -TT/--unzip-command runs a command to test the archive; -TT is a two-letter short option."""
    for index, element in enumerate(args, 1):
        name = element[2:].partition("=")[0].lower()
        if element.startswith("--") and name and "unzip-command".startswith(name):
            raise Refusal(index, f"--unzip-command {RUNS_VALUE}")
        if element.startswith("-") and not element.startswith("--") and "TT" in element:
            raise Refusal(index, f"-TT {RUNS_VALUE}")


# --------------------------------------------------------------------------- find

_FIND_REFUSED = {
    **dict.fromkeys(("-exec", "-execdir", "-ok", "-okdir"), "runs a command for every file it finds"),
    "-fls": "writes its listing to a file",
    "-files0-from": READS_NAMES,
}


def check_find(args: Sequence[str], ctx: Context) -> None:
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
