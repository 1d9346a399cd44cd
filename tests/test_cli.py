"""The command line: options, environment, config file, precedence, dry run, errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trio_exec import __version__
from trio_exec.cli import OPTIONS, load_settings, main
from trio_exec.compose import compile_tools, shell_tool
from trio_exec.config import Settings
from trio_exec.errors import ConfigError
from trio_exec.programs import DEFAULT_BLACKLIST

ECHO = ["--cmd", 'echo|"echo {message}"']
ENV = {"PATH": os.environ.get("PATH", os.defpath)}


def settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    return load_settings(argv, {**ENV, **(env or {})}).settings


@pytest.mark.parametrize(
    ("args", "env", "rps"),
    [
        ([], {}, 0.0),
        (["--transport", "streamable-http"], {}, 10.0),
        (["--transport", "websocket"], {}, 10.0),
        ([], {"MCP_EXEC_RATE_LIMIT_RPS": "5"}, 5.0),
        (["--transport", "streamable-http", "--rate-limit-rps", "0"], {}, 0.0),
    ],
)
def test_the_rate_limit_is_off_on_stdio_and_on_for_networks_unless_set(
    args: list[str], env: dict[str, str], rps: float
) -> None:
    assert settings([*ECHO, *args], env).guards.rate_limit_rps == rps


def test_defaults_are_those_of_mcp_secure_exec() -> None:
    s = settings(ECHO)
    assert s.policy.blacklist == DEFAULT_BLACKLIST
    assert len(s.policy.blacklist) == 47
    assert s.policy.sensitive_keys == ("password", "token", "secret", "key", "auth", "credential")
    assert (s.runner.cmd_timeout_s, s.log.level, s.transport, s.network.bind) == (
        30.0,
        "info",
        "stdio",
        "127.0.0.1:3344",
    )
    assert (s.guards.rate_limit_rps, s.guards.rate_limit_burst, s.guards.max_concurrent) == (0.0, 20, 50)  # stdio: off
    assert (s.guards.circuit_threshold, s.guards.circuit_timeout_s) == (10, 60.0)
    assert (s.policy.allow_dangerous, s.policy.validate_paths, s.policy.allow_missing_binaries, s.network.stateful) == (
        False,
        True,
        False,
        False,
    )
    assert s.runner.max_timeout_s == 300.0
    assert s.runner.max_output_bytes == 1024 * 1024


def test_backlog_and_write_timeout_defaults_variables_and_flags() -> None:
    s = settings([*ECHO, "-t", "streamable-http"])
    assert (s.network.backlog, s.network.write_timeout_s) == (1024, 30.0)
    env = {"MCP_EXEC_BACKLOG": "4096", "MCP_EXEC_WRITE_TIMEOUT_SECS": "0"}
    assert (settings(ECHO, env).network.backlog, settings(ECHO, env).network.write_timeout_s) == (4096, 0.0)
    s = settings([*ECHO, "--backlog", "64", "--write-timeout", "2.5"], env)
    assert (s.network.backlog, s.network.write_timeout_s) == (64, 2.5)


def test_every_option_has_an_mcp_exec_environment_variable() -> None:
    for o in OPTIONS:
        assert o.env.startswith("MCP_EXEC_"), o.long


def test_short_options_match_mcp_secure_exec() -> None:
    shorts = {o.long: o.short for o in OPTIONS if o.short}
    assert shorts == {
        "--cmd": "-c",
        "--blacklist": "-B",
        "--allow-dangerous": "-D",
        "--dry-run": "-d",
        "--transport": "-t",
        "--bind": "-b",
        "--stateful": "-s",
    }


def test_the_command_line_beats_the_environment_which_beats_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\ncmd_timeout = 5\nmax_concurrent = 7\nlog_level = 'error'\n")
    env = {"MCP_EXEC_CMD_TIMEOUT_SECS": "6", "MCP_EXEC_LOG_LEVEL": "debug", "MCP_EXEC_CONFIG": str(config)}
    s = settings([*ECHO, "--cmd-timeout", "7"], env)
    assert s.runner.cmd_timeout_s == 7.0  # CLI
    assert s.log.level == "debug"  # environment
    assert s.guards.max_concurrent == 7  # config file
    assert s.guards.rate_limit_burst == 20  # default


def test_commands_come_from_the_environment_unless_given_on_the_command_line() -> None:
    env = {"MCP_EXEC_COMMANDS": 'a|"date";b|"uptime"'}
    assert [t.name for t in settings([], env).tools] == ["a", "b"]
    assert [t.name for t in settings(ECHO, env).tools] == ["echo"]


def test_repeated_cmd_and_semicolon_lists_combine() -> None:
    s = settings(["-c", 'a|"date"', "--cmd", 'b|"uptime"; c|"true"'])
    assert [t.name for t in s.tools] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("env", "expected"), [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False)]
)
def test_boolean_environment_variables(env: str, expected: bool) -> None:
    assert settings(ECHO, {"MCP_EXEC_ALLOW_DANGEROUS": env}).policy.allow_dangerous is expected


def test_config_file_tools_and_per_placeholder_settings(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        """
[tools.grep]
template = "grep -n {pattern} {file}"
description = "Search one file"
timeout_s = 10
env = { LC_ALL = "C" }
annotations = { read_only = true, destructive = false }
[tools.grep.args.pattern]
kind = "regex"
max_length = 200
"""
    )
    s = settings(["--config", str(config)])
    (grep,) = s.tools
    assert grep.timeout_s == 10.0
    assert grep.env == {"LC_ALL": "C"}
    assert grep.args["pattern"].constraint.max_length == 200
    assert grep.annotations == {"read_only": True, "destructive": False}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[server]\nbogus = 1\n", "'bogus'"),
        ("[tools.a]\ntemplate = 'date'\nbogus = 1\n", "'bogus'"),
        ("[tools.a]\ntemplate = 'echo {x}'\n[tools.a.args.x]\nbogus = 1\n", "'bogus'"),
        ("[tools.a]\ntemplate = 'echo {x}'\n[tools.a.args.x]\nkind = 'nonsense'\n", "unknown kind"),
        ("[tools.a]\ntemplate = 'echo {x}'\n[tools.a.args.x]\npattern = '('\n", "pattern"),
        ("[tools.a]\ntemplate = 'date'\nannotations = { sneaky = true }\n", "'sneaky'"),
        ("[tools.a]\ndescription = 'no template'\n", "template"),
        ("[tools.a]\ntemplate = 'date'\ntimeout_s = -1\n", "timeout_s"),
        ("[other]\n", "'other'"),
        ("not toml [", "not valid TOML"),
        ('{"tools": {"a": {"template": "date"}}}', "not valid TOML.*; it is JSON: the config file is TOML"),
        ("[server]\nbase_pth = '/tmp'\n", r"unknown key 'base_pth' \(did you mean 'base_path'\?\)"),
        ("[tools.a]\ntemplat = 'date'\n", r"unknown key 'templat' \(did you mean 'template'\?\)"),
        ("[tools.a]\ntemplate = 'date'\ntimeout_s = 900\n", "timeout_s 900 is above --max-timeout 300"),
        (
            "[tools.a]\ntemplate = 'echo {n}'\n[tools.a.args.n]\nkind = 'integer'\nminimum = 5\nmaximum = 1\n",
            "minimum 5 is above maximum 1",
        ),
        (
            "[tools.a]\ntemplate = 'echo {n}'\n[tools.a.args.n]\nkind = 'integer'\nmaximum = 9\ndefault = 10\n",
            "default 10 is outside",
        ),
        (
            "[tools.a]\ntemplate = 'echo {n}'\n[tools.a.args.n]\nkind = 'integer'\ndefault = 'ten'\n",
            "default 'ten' is not an integer",
        ),
        (
            "[tools.a]\ntemplate = 'echo {e}'\n[tools.a.args.e]\nenum = ['x', 'y']\ndefault = 'z'\n",
            "default 'z' is not one of the enum values",
        ),
    ],
)
def test_config_file_errors_name_the_key_and_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=fragment) as caught:
        settings(["--config", str(config)])
    assert str(config) in caught.value.message


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        ([], {}, "no tools"),
        ([*ECHO, *ECHO], {}, "duplicate"),
        ([*ECHO, "--cmd-timeout", "0"], {}, "greater than 0"),
        ([*ECHO, "--cmd-timeout", "abc"], {}, "must be a number"),
        ([*ECHO, "--log-level", "loud"], {}, "one of"),
        ([*ECHO, "--base-path", "/nonexistent-dir-xyz"], {}, "not a directory"),
        ([*ECHO, "-t", "streamable-http", "--bind", "nonsense"], {}, "HOST:PORT"),
        ([*ECHO, "-t", "streamable-http", "--auth-token", "short"], {}, "at least 16"),
        ([*ECHO, "-t", "websocket", "--certfile", "/etc/hostname"], {}, "go together"),
        ([*ECHO, "-t", "streamable-http", "--forwarded-allow-ips", "not-an-ip"], {}, "not an IP"),
        ([*ECHO, "-t", "streamable-http", "--root-path", "exec/"], {}, "must start with '/'"),
        ([*ECHO, "-t", "streamable-http", "--auth-token-file", "/nonexistent"], {}, "auth-token-file"),
        (ECHO, {"MCP_EXEC_ALLOW_DANGEROUS": "maybe"}, "true or false"),
        ([*ECHO, "-t", "streamable-http", "--backlog", "0"], {}, "--backlog must be at least 1"),
        ([*ECHO, "-t", "websocket", "--backlog", "many"], {}, "--backlog must be an integer"),
        (ECHO, {"MCP_EXEC_BACKLOG": "1.5"}, "MCP_EXEC_BACKLOG must be an integer"),
        ([*ECHO, "-t", "streamable-http", "--write-timeout", "-1"], {}, "--write-timeout must be at least 0"),
        (ECHO, {"MCP_EXEC_WRITE_TIMEOUT_SECS": "soon"}, "MCP_EXEC_WRITE_TIMEOUT_SECS must be a number"),
        (["--bogus"], {}, "unknown option --bogus"),
        ([*ECHO, "--cmd-timeot", "5"], {}, r"unknown option --cmd-timeot \(did you mean '--cmd-timeout'\?\)"),
        ([*ECHO, "-Z"], {}, "unknown option -Z"),
        ([*ECHO, "-t", "streamable-http", "--bind"], {}, "option --bind needs a value"),
        (["serve", *ECHO], {}, "unexpected argument 'serve'"),
        ([*ECHO, "--cmd-timeout", "500"], {}, "--cmd-timeout 500 is above --max-timeout 300"),
        ([*ECHO, "--cmd-timeout", "20", "--max-timeout", "10"], {}, "--cmd-timeout 20 is above --max-timeout 10"),
        (["--config", "/nonexistent.toml"], {}, "cannot read"),
    ],
)
def test_configuration_errors(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        settings(argv, env)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_exec", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_dry_run_refuses_a_blacklisted_program_with_one_clear_line() -> None:
    proc = run_cli("--dry-run", "--cmd", 'x|"rm {path}"')
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "blacklisted" in lines[0]
    assert "rm" in lines[0]
    assert "Traceback" not in proc.stderr


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``trio-exec: error:`` line of a run that exited 2 (no traceback, nothing on stdout)."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("trio-exec: error: ")
    return line


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "serving"])
@pytest.mark.parametrize("transport", ["streamable-http", "websocket"])
def test_an_address_in_use_is_one_line_at_start_up(transport: str, dry_run: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        line = one_error_line(run_cli(*ECHO, "-t", transport, "--bind", bind, *(["--dry-run"] if dry_run else [])))
    assert f"--bind {bind}: cannot listen there (Address already in use); another process listens there" in line


@pytest.mark.parametrize("transport", ["streamable-http", "websocket"])
@pytest.mark.parametrize("bind", ["0.0.0.0:3344", "[::]:3344", "192.0.2.7:3344", "mcp.example.com:3344"])
def test_a_bind_reachable_from_other_machines_needs_a_token_or_an_explicit_opt_out(transport: str, bind: str) -> None:
    argv = [*ECHO, "-t", transport, "--bind", bind]
    with pytest.raises(ConfigError, match="reachable from other machines and no token is set") as caught:
        settings(argv)
    assert "--insecure-no-auth" in caught.value.message
    assert settings(argv, {"MCP_EXEC_AUTH_TOKEN": "t" * 16}).network.auth_tokens
    assert settings([*argv, "--insecure-no-auth"]).network.insecure_no_auth
    assert settings(argv, {"MCP_EXEC_INSECURE_NO_AUTH": "true"}).network.insecure_no_auth


@pytest.mark.parametrize("bind", ["127.0.0.1:3344", "127.1.2.3:0", "[::1]:3344", "localhost:3344"])
def test_a_loopback_bind_needs_no_token(bind: str) -> None:
    assert not settings([*ECHO, "-t", "streamable-http", "--bind", bind]).network.auth_tokens


def test_serving_without_auth_on_purpose_is_said_loudly() -> None:
    proc = run_cli("-d", *ECHO, "-t", "streamable-http", "--bind", "0.0.0.0:0", "--insecure-no-auth")
    assert proc.returncode == 0, proc.stderr
    assert "--insecure-no-auth: 0.0.0.0:0 serves without authentication" in proc.stdout


def test_a_tls_pair_that_does_not_load_is_one_line_at_start_up(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    pairs = []
    for name in ("a", "b"):
        openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}"]
        paths = ["-keyout", str(tmp_path / f"{name}.key"), "-out", str(tmp_path / f"{name}.pem")]
        subprocess.run([*openssl, *paths], check=True, capture_output=True)
        pairs.append((tmp_path / f"{name}.pem", tmp_path / f"{name}.key"))
    network = [*ECHO, "-t", "streamable-http", "--bind", "127.0.0.1:0", "--dry-run"]
    cases = [
        ((garbage, garbage), "(not PEM)"),
        ((pairs[0][0], pairs[1][1]), "(the key does not match the certificate)"),
    ]
    for (cert, key), why in cases:
        line = one_error_line(run_cli(*network, "--certfile", str(cert), "--keyfile", str(key)))
        assert f"cannot load the TLS certificate and key {why}" in line
    good = run_cli(*network, "--certfile", str(pairs[0][0]), "--keyfile", str(pairs[0][1]))
    assert good.returncode == 0, good.stderr


def test_dry_run_prints_tools_programs_kinds_schemas_and_protections() -> None:
    proc = run_cli("-d", "--cmd", 'cat|"cat {path}"', "--cmd", 'echo|"echo {message}"')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "configuration is valid" in out
    assert "program: /" in out
    assert "placeholder {path}: path" in out
    assert "placeholder {message}: plain" in out
    assert '"additionalProperties": false' in out
    assert "no --base-path" in out  # the unconfined-paths warning
    assert "blacklist: 47 programs" in out


def test_dry_run_from_the_environment_says_path_validation_is_off() -> None:
    proc = run_cli(
        env={"MCP_EXEC_DRY_RUN": "true", "MCP_EXEC_COMMANDS": 'c|"cat {path}"', "MCP_EXEC_NO_VALIDATE_PATHS": "true"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "path validation: OFF" in proc.stdout
    assert "NOT confined" in proc.stdout


def test_version_and_help() -> None:
    assert run_cli("--version").stdout.strip() == f"trio-exec {__version__}"
    help_text = run_cli("--help").stdout
    for o in OPTIONS:
        assert o.long in help_text
        assert o.env in help_text


def test_main_returns_two_on_configuration_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cmd", "broken"], ENV) == 2
    err = capsys.readouterr().err
    assert err.startswith("trio-exec: error: ")
    assert err.count("\n") == 1


def test_network_settings_on_stdio_are_accepted_with_a_warning() -> None:
    proc = run_cli("-d", *ECHO, "--auth-token", "s3cret-value", "--bind", "0.0.0.0:1")
    assert proc.returncode == 0
    assert "--auth-token is for network transports and is ignored on stdio" in proc.stdout
    assert "--bind is for network transports and is ignored on stdio" in proc.stdout
    assert "--auth-token on the command line is visible in ps" in proc.stdout
    assert "s3cret-value" not in proc.stdout + proc.stderr


def test_dry_run_shows_the_guards_and_the_audit_log(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    proc = run_cli("-d", *ECHO, "--max-concurrent", "3", "--audit-log", str(audit), "--audit-rotate", "10M")
    assert proc.returncode == 0, proc.stderr
    assert "max concurrent 3" in proc.stdout
    assert "rate limit off" in proc.stdout  # stdio
    network = run_cli("-d", *ECHO, "--transport", "streamable-http")
    assert "rate limit 10/s burst 20 per client" in network.stdout, network.stderr
    assert f"audit log: {audit} (rotated at 10485760)" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--audit-log", "/nonexistent-dir-xyz/audit.jsonl"], "not writable"),
        (["--audit-rotate", "10M"], "needs --audit-log"),
        (["--log-format", "xml"], "one of"),
    ],
)
def test_audit_and_log_option_errors(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        settings([*ECHO, *argv])


@pytest.mark.parametrize(
    ("value", "expected"), [("512M", 512 * 1024**2), ("2g", 2 * 1024**3), ("1048576", 1048576), ("64KiB", 65536)]
)
def test_sizes_take_binary_suffixes(value: str, expected: int) -> None:
    assert settings([*ECHO, "--limit-memory", value]).runner.limits.memory_bytes == expected


@pytest.mark.parametrize("value", ["lots", "-5", "0", "1.5M"])
def test_bad_sizes_are_configuration_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="--limit-fsize"):
        settings([*ECHO, "--limit-fsize", value])


def test_limits_need_prlimit_on_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prlimit"):
        load_settings([*ECHO, "--limit-cpu", "5"], {"PATH": str(tmp_path)})
    s = settings([*ECHO, "--limit-cpu", "5", "--limit-nofile", "64"])
    assert s.runner.prlimit_path is not None
    assert (s.runner.limits.cpu_s, s.runner.limits.nofile, s.runner.limits.memory_bytes) == (5, 64, None)


def test_dry_run_shows_resource_limits() -> None:
    proc = run_cli("-d", *ECHO, "--limit-memory", "256M", "--limit-nproc", "50")
    assert proc.returncode == 0, proc.stderr
    assert "resource limits: memory 268435456, fsize 67108864, nproc 50 (via " in proc.stdout


def test_readme_documents_every_option_and_variable() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for o in OPTIONS:
        assert f"`{o.short + ', ' if o.short else ''}{o.long}" in readme, o.long
        assert f"`{o.env}`" in readme, o.env


def test_tokens_come_from_the_variable_and_the_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\n" + "b" * 20 + "\n\n" + "c" * 20 + "\n")
    s = settings([*ECHO, "-t", "streamable-http", "--auth-token-file", str(tokens)], {"MCP_EXEC_AUTH_TOKEN": "a" * 20})
    assert s.network.auth_tokens == ("a" * 20, "b" * 20, "c" * 20)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="holds no token"):
        settings([*ECHO, "-t", "streamable-http", "--auth-token-file", str(empty)])


def test_mcp_shell_server_variables_merge_and_the_command_line_wins() -> None:
    env = {"ALLOW_COMMANDS": "ls, cat", "ALLOWED_COMMANDS": "grep", "MCP_EXEC_ALLOW_COMMANDS": "sort",
           "ALLOW_PATTERNS": "^x[a-z]$"}  # fmt: skip
    merged = settings([], env)
    assert merged.policy.allow_commands == ("sort", "ls", "cat", "grep")
    assert merged.policy.allow_patterns == ("^x[a-z]$",)
    assert settings(["--allow-commands", "echo"], env).policy.allow_commands == ("echo",)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--allow-commands", "/bin/ls"], "bare program names"),
        (["--allow-commands", "bash"], "shell, interpreter"),
        (["--allow-commands", "definitely-missing-xyz"], "not installed"),
        (["--allow-patterns", ".*"], "--allow-patterns"),
        (["--allow-patterns", "[a-z0-9]+"], "matches refused programs such as 'sh', 'python'"),
        (["--allow-patterns", r"perl5\.36"], "'perl5.36'"),
        (["--allow-patterns", "r[a-z]"], "'rm'"),  # the template blacklist counts too
        (["--allow-commands", "ls", "--cmd", 'shell_execute|"date"'], "clashes"),
    ],
)
def test_allowlist_errors_at_startup(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        compile_tools(settings(argv))


def test_session_options_come_from_flags_and_variables_and_refuse_nonsense() -> None:
    flags = load_settings([*ECHO, "--session-idle-timeout", "2.5", "--max-sessions", "7"], {}).settings
    env = {"MCP_EXEC_SESSION_IDLE_TIMEOUT_SECS": "60", "MCP_EXEC_MAX_SESSIONS": "9"}
    variables = load_settings(list(ECHO), env).settings
    assert (flags.network.session_idle_timeout_s, flags.network.max_sessions) == (2.5, 7)
    assert (variables.network.session_idle_timeout_s, variables.network.max_sessions) == (60, 9)
    default = load_settings(list(ECHO), {}).settings
    assert (default.network.max_sessions, default.network.session_idle_timeout_s) == (1000, 300)
    for bad in (["--max-sessions", "0"], ["--max-sessions", "1.5"], ["--session-idle-timeout", "0"]):
        proc = run_cli(*bad, *ECHO, "-d")
        assert proc.returncode == 2, bad
        assert "must be" in proc.stderr


def test_patterns_that_match_no_refused_name_or_allow_dangerous_pass() -> None:
    shell = shell_tool(settings(["--allow-patterns", "g?awk,[a-z]+sum"]))
    assert shell is not None
    assert [p.pattern for p in shell.allow_patterns] == ["g?awk", "[a-z]+sum"]
    loose = shell_tool(settings(["--allow-patterns", "[a-z0-9]+", "--allow-dangerous"]))
    assert loose is not None
    unlisted = shell_tool(settings(["--allow-patterns", "r[a-z]", "--blacklist", "gzip"]))
    assert unlisted is not None  # rm is only refused through the blacklist it is on
