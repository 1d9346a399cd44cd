"""Hypothesis properties of the tar and git policies: a refused option is refused wherever it stands.

tar: whatever words surround it, and whichever word before it one dialect would read as a value, an exec
option or a names-list option anywhere in argv is refused (SECURITY.md, the tar row). git: a subcommand that
is not one of git's own is refused whatever global options come first (an alias could be a shell command).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_exec.policies import POLICIES, Context, PathUse, Refusal

# Words tar programs read: GNU and bsdtar options (some take a value in one dialect only), values, names.
_TAR_WORDS = [
    "-c", "-x", "-t", "-v", "-z", "-H", "-b", "20", "-f", "a.tar", "-C", "sub", "--format=posix", "pax",
    "--exclude=*.o", "-X", "ex.txt", "--", "-", "file.txt", "dir", "-cvf", "-xzf", "--verbose", "-s", "-K",
    "--null", "-L", "--transform=s/a/b/", "-N", "2020-01-01", "-V", "label",
]  # fmt: skip
_TAR_REFUSED = [
    "--use-compress-program=sh", "--use=sh", "--to-command=sh", "--to=sh", "--checkpoint-action=exec=sh",
    "--check=exec=sh", "--rsh-command=/bin/sh", "--info-script=x", "--new-volume-script=x", "-Ish", "-I",
    "-T", "-Tlist", "--files-from=list", "--files=list", "-F", "-P", "--absolute-names", "-cHIsh", "-vT-",
    "-xPf",
]  # fmt: skip


def _ctx() -> Context:
    def confine(_value: str, _use: PathUse, _what: str) -> None:
        return None  # containment is tested elsewhere; here only the option grammar matters

    return Context(program="tar", directory=str(Path.cwd()), confine=confine)


@settings(max_examples=400, deadline=None)
@given(
    before=st.lists(st.sampled_from(_TAR_WORDS), max_size=6),
    refused=st.sampled_from(_TAR_REFUSED),
    after=st.lists(st.sampled_from(_TAR_WORDS), max_size=6),
    program=st.sampled_from(["tar"]),
)
def test_a_refused_tar_option_is_refused_wherever_it_stands(
    before: list[str], refused: str, after: list[str], program: str
) -> None:
    args = ["-c", *before, refused, *after]
    with pytest.raises(Refusal) as caught:
        POLICIES[program](args, _ctx())
    assert caught.value.index <= len(before) + 2  # the refused word or an earlier refused spelling


@settings(max_examples=200, deadline=None)
@given(before=st.lists(st.sampled_from(_TAR_WORDS), max_size=8))
def test_ordinary_tar_words_are_accepted(before: list[str]) -> None:
    POLICIES["tar"](["-c", *before], _ctx())


_GIT_GLOBALS = ["-C", "sub", "--no-pager", "-P", "--namespace=x", "--literal-pathspecs", "-p", "--no-replace-objects"]


@settings(max_examples=300, deadline=None)
@given(
    globals_=st.lists(st.sampled_from(_GIT_GLOBALS), max_size=4),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True),
    rest=st.lists(st.sampled_from(["-v", "x", "--all", "HEAD"]), max_size=3),
)
def test_only_gits_own_subcommands_run(globals_: list[str], name: str, rest: list[str]) -> None:
    from trio_exec.policies.git import _GIT_COMMANDS  # the list under test

    args = [*globals_, name, *rest]
    if globals_ and globals_[-1] == "-C":
        args.insert(len(globals_), "sub")
    if name in _GIT_COMMANDS:
        return
    with pytest.raises(Refusal):
        POLICIES["git"](args, _ctx())
