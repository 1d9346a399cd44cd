"""The sandbox's pure parts: the view it builds, program prefixes, the /etc class rule, options."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from trio_exec import sandbox
from trio_exec.cli import load_settings
from trio_exec.errors import ConfigError
from trio_exec.runner import _status
from trio_exec.sandbox import Box, Mode, Report, Sandbox

ECHO = ["--cmd", 'echo|"echo {message}"']


def boxed(base: str, **fields: object) -> Sandbox:
    return Sandbox(mode=Mode.BWRAP, report=Report(layer="bwrap", detail=""), bwrap="/usr/bin/bwrap", base=base,
                   **fields)  # type: ignore[arg-type]  # fmt: skip


def pairs(argv: tuple[str, ...], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_the_base_is_bound_after_the_private_tmp_so_a_base_under_tmp_stays_visible(tmp_path: Path) -> None:
    argv = boxed(str(tmp_path)).wrap(["/usr/bin/id"], cwd=str(tmp_path), home="/tmp", box=Box(), seccomp_fd=None)
    assert argv.index("--tmpfs") < argv.index("--bind")
    assert pairs(argv, "--bind") == [str(tmp_path)]
    assert argv[-2:] == ("--", "/usr/bin/id")
    assert "--share-net" not in argv
    assert {"--unshare-all", "--die-with-parent", "--new-session"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_a_read_only_tool_and_the_network_switch_change_only_what_they_say(tmp_path: Path) -> None:
    argv = boxed(str(tmp_path)).wrap(
        ["/usr/bin/id"], cwd=str(tmp_path), home="/tmp", box=Box(network=True, writable=False), seccomp_fd=7
    )
    assert "--share-net" in argv
    assert str(tmp_path) in pairs(argv, "--ro-bind")
    assert pairs(argv, "--bind") == []
    assert pairs(argv, "--seccomp") == ["7"]


def test_extra_paths_nest_in_order_and_a_later_rw_wins(tmp_path: Path) -> None:
    outer, inner = tmp_path / "a", tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    box = boxed(str(tmp_path / "base"), ro=(str(inner), str(outer)))
    argv = box.wrap(["/usr/bin/id"], cwd=str(tmp_path / "base"), home="/tmp", box=Box(rw=(str(inner),)),
                    seccomp_fd=None)  # fmt: skip
    where = {p: i for i, p in enumerate(argv)}
    assert where[str(outer)] < where[str(inner)]  # a parent first, or it would hide its child
    assert str(inner) in pairs(argv, "--bind")


def test_home_outside_the_view_is_a_fresh_tmpfs_and_masks_apply_only_to_what_exists(tmp_path: Path) -> None:
    secret = tmp_path / "audit.jsonl"
    secret.write_text("x")
    box = boxed(str(tmp_path), masks=(str(secret), str(tmp_path / "not-yet"), "/etc/definitely-not-here"))
    argv = box.wrap(["/usr/bin/id"], cwd=str(tmp_path), home="/tmp/trio-exec-home-x", box=Box(), seccomp_fd=None)
    assert "/tmp/trio-exec-home-x" in pairs(argv, "--tmpfs")
    masked = [argv[i + 2] for i, a in enumerate(argv) if a == "--ro-bind" and argv[i + 1] == "/dev/null"]
    assert masked == [str(secret)]


def test_a_program_outside_the_system_brings_its_prefix_and_its_interpreter(tmp_path: Path) -> None:
    tool = tmp_path / "opt" / "tool"
    (tool / "bin").mkdir(parents=True)
    script = tool / "bin" / "run"
    script.write_text(f"#!{sys.executable}\nprint('hi')\n")
    sandbox.program_prefixes.cache_clear()
    found = sandbox.program_prefixes(str(script))
    assert found[0] == str(tool)
    real = os.path.realpath(sys.executable)
    assert any(real.startswith(p + "/") for p in found[1:])
    assert sandbox.program_prefixes("/usr/bin/env") == ()


@pytest.mark.parametrize("program", ["/root/bin/x", "/home/alice/bin/x", "/opt/x"])
def test_a_home_or_top_level_folder_is_never_shown_whole(program: str) -> None:
    sandbox.program_prefixes.cache_clear()
    for prefix in sandbox.program_prefixes(program):
        assert prefix not in ("/root", "/home/alice", "/opt", "/")


def test_what_others_could_not_read_in_etc_is_hidden_whatever_its_name(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "app").mkdir(parents=True)
    (etc / "app" / "settings.conf").write_text("ok")
    (etc / "app" / "credentials").write_text("secret")
    (etc / "app" / "credentials").chmod(0o600)
    (etc / "private").mkdir()
    (etc / "private").chmod(0o700)
    (etc / "hosts").write_text("127.0.0.1 localhost")
    (etc / "shadow").write_text("root:x")  # a listed name, even if its mode were wrong
    files, dirs = sandbox.hidden_in_etc(str(etc))
    assert str(etc / "app" / "credentials") in files
    assert str(etc / "shadow") in files
    assert str(etc / "private") in dirs
    assert str(etc / "hosts") not in files
    readable = sandbox.readable_etc([*files, *dirs], str(etc))
    assert str(etc / "hosts") in readable
    assert str(etc / "app" / "settings.conf") in readable  # its folder is split around the secret
    assert not any(p.endswith(("credentials", "shadow", "private")) for p in readable)


def test_bwraps_128_plus_n_reads_back_as_signal_n_only_inside_the_box() -> None:
    assert _status(139, boxed=True) == -11
    assert _status(139, boxed=False) == 139
    assert _status(1, boxed=True) == 1
    assert _status(-9, boxed=True) == -9
    assert _status(None, boxed=True) is None


def test_off_with_require_is_a_contradiction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="contradicts"):
        sandbox.detect("off", base=str(tmp_path), require=True)
    off = sandbox.detect("off", base=str(tmp_path))
    assert not off.active
    assert off.wrap(["/bin/true"], cwd=str(tmp_path), home="/tmp", box=Box(), seccomp_fd=None) == ("/bin/true",)
    assert off.seccomp_pipe() is None


def test_sandbox_paths_come_from_repeated_flags_the_environment_and_the_config(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cli = load_settings([*ECHO, "--sandbox-ro", str(a), "--sandbox-ro", str(b)], {}).settings
    env = load_settings(ECHO, {"MCP_EXEC_SANDBOX_RW": f"{a}:{b}"}).settings
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nsandbox_ro = ["{a}"]\nsandbox = "off"\n[tools.t]\ntemplate = "date"\n'
                      f'network = true\nwritable = false\nsandbox_rw = ["{b}"]\n')  # fmt: skip
    from_file = load_settings(["--config", str(config)], {}).settings
    assert cli.sandbox.ro == (str(a), str(b))
    assert env.sandbox.rw == (str(a), str(b))
    assert from_file.sandbox.ro == (str(a),)
    assert from_file.sandbox.mode == "off"
    (tool,) = from_file.tools
    assert (tool.network, tool.writable, tool.sandbox_rw) == (True, False, (str(b),))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sandbox-ro", "relative/path"], "absolute path that exists"),
        (["--sandbox-rw", "/definitely/not/here"], "absolute path that exists"),
        (["--sandbox", "chroot"], "must be one of"),
    ],
)
def test_bad_sandbox_options_are_one_line_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings([*ECHO, *argv], {})


def test_a_tool_with_a_bad_sandbox_key_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[tools.t]\ntemplate = "date"\nsandbox_ro = "/usr"\n')
    with pytest.raises(ConfigError, match="sandbox_ro must be a list"):
        load_settings(["--config", str(config)], {})
    config.write_text('[tools.t]\ntemplate = "date"\nnetwork = "yes"\n')
    with pytest.raises(ConfigError, match="network"):
        load_settings(["--config", str(config)], {})
