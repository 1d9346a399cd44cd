"""Loading: the command line, the ``MCP_EXEC_*`` environment and the config file merged into ``Settings``.

It reads the process environment only through the ``environ`` it is handed (``cli.main`` passes
``os.environ``; nothing else in the package reads it). Precedence: command line > environment > ``[server]``
of the config file > default. Every mistake is a ``ConfigError`` with one line that names the option and what
to give instead. ``load_settings`` reads as its steps: parse, merge the sources, the tools, the legacy
allowlist variables, the paths and timeouts, the network and its tokens, the audit log, the resource limits,
then one ``Settings``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import docopt

from trio_exec import __version__, sandbox
from trio_exec.cli.converters import as_names
from trio_exec.cli.options import BY_CONFIG_KEY, FSIZE_PER_OUTPUT, NETWORK_RATE_LIMIT_RPS, OPTIONS
from trio_exec.cli.usage import command_line_problem, usage
from trio_exec.config import FLAT_NAMES, Limits, Settings, ToolSpec, did_you_mean, load_toml, split_config
from trio_exec.errors import ConfigError
from trio_exec.templates import parse_specs


def _from_cli(parsed: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for o in OPTIONS:
        value = parsed.get(o.long)
        if o.long == "--cmd":
            if value:
                raw[o.field] = list(value)
        elif o.repeat:
            if value:
                raw[o.field] = o.convert(list(value), o.long)
        elif o.metavar is None:
            if value:
                raw[o.field] = True
        elif value is not None:
            raw[o.field] = o.convert(value, o.long)
    return raw


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for o in OPTIONS:
        if o.env in environ:
            raw[o.field] = [environ[o.env]] if o.long == "--cmd" else o.convert(environ[o.env], o.env)
    return raw


def _from_config(server: Mapping[str, Any], path: str) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key, value in server.items():
        o = BY_CONFIG_KEY.get(key)
        if o is None:
            hint = did_you_mean(key, BY_CONFIG_KEY)
            raise ConfigError(f"{path}: [server] has unknown key {key!r}{hint}; keys are long option names, '-' as '_'")
        raw[o.field] = o.convert(value, f"{path}: [server] {key}")
    return raw


@attrs.frozen
class Loaded:
    """Settings plus what only the CLI knows: where each value came from."""

    settings: Settings
    explicit: frozenset[str]
    token_on_command_line: bool = False
    doctor: bool = False


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Loaded:
    """Parse argv and environ into ``Settings``; raises ``ConfigError``."""
    try:
        parsed = docopt.docopt(usage(), list(argv), version=f"trio-exec {__version__}")
    except docopt.DocoptExit as e:
        raise ConfigError(f"{command_line_problem(argv, str(e))}; see trio-exec --help") from None
    cli = _from_cli(parsed)
    env = _from_env(environ)
    config_path = cli.get("config_path") or env.get("config_path")
    file_server: dict[str, Any] = {}
    file_tools: tuple[ToolSpec, ...] = ()
    if config_path:
        server_table, file_tools = split_config(load_toml(config_path), config_path)
        file_server = _from_config(server_table, config_path)
    merged: dict[str, Any] = {o.field: o.default for o in OPTIONS} | file_server | env | cli
    explicit = frozenset(file_server) | frozenset(env) | frozenset(cli)

    tools = _tool_specs(merged, "--cmd" if "tools" in cli else "MCP_EXEC_COMMANDS") + file_tools
    _check_unique(tools)
    _merge_legacy_allowlists(merged, cli, environ)
    doctor = bool(parsed.get("doctor"))
    if not tools and not merged["allow_commands"] and not merged["allow_patterns"] and not doctor:
        raise ConfigError(
            "no tools configured: give --cmd 'NAME|\"TEMPLATE\"', MCP_EXEC_COMMANDS, --config or --allow-commands"
        )
    base_path = _base_path(merged["base_path"])
    if merged["rate_limit_rps"] is None:  # on stdio the one client is the local agent: no limit by default
        merged["rate_limit_rps"] = 0.0 if merged["transport"] == "stdio" else NETWORK_RATE_LIMIT_RPS
    if merged["transport"] != "stdio":
        _check_network(merged)
        _check_workers(merged, tools)
    _check_timeouts(merged, tools)
    tokens = _tokens(merged)
    _check_exposure(merged, tokens)
    _check_audit_log(merged["audit_log"], merged["audit_rotate"])
    search_path = environ.get("PATH", os.defpath)
    limits, prlimit_path = _limits(merged, search_path)

    values = {k: v for k, v in merged.items() if k in FLAT_NAMES}
    values.update(
        tools=tools,
        base_path=base_path,
        validate_paths=not merged["no_validate_paths"],
        # A listed name that is unset in the server's environment is simply not passed.
        passthrough_env={n: environ[n] for n in merged["env_allow"] if n in environ},
        search_path=search_path,
        limits=limits,
        prlimit_path=prlimit_path,
        auth_tokens=tokens,
        config_path=config_path or None,
    )
    return Loaded(
        settings=Settings.from_flat(values), explicit=explicit, token_on_command_line="auth_token" in cli, doctor=doctor
    )


def _tool_specs(merged: Mapping[str, Any], source: str) -> tuple[ToolSpec, ...]:
    """The ``--cmd``/``MCP_EXEC_COMMANDS`` tools, in order."""
    return tuple(
        ToolSpec(name=name, template=template, source=source)
        for text in merged["tools"] or ()
        for name, template in parse_specs(text, source)
    )


def _check_unique(tools: Sequence[ToolSpec]) -> None:
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise ConfigError(f"{t.source}: duplicate tool name {t.name!r}")
        seen.add(t.name)


def _merge_legacy_allowlists(merged: dict[str, Any], cli: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """mcp-shell-server's ``ALLOW_COMMANDS``/``ALLOWED_COMMANDS``/``ALLOW_PATTERNS``, merged with ours unless
    the command line gives the list."""
    for field, variables in (
        ("allow_commands", ("ALLOW_COMMANDS", "ALLOWED_COMMANDS")),
        ("allow_patterns", ("ALLOW_PATTERNS",)),
    ):
        if field not in cli:
            legacy = [n for var in variables for n in as_names(environ.get(var, ""), var)]
            merged[field] = tuple(dict.fromkeys([*merged[field], *legacy]))


def _base_path(base_path: str | None) -> str | None:
    if not base_path:
        return None
    if not os.path.isdir(base_path):
        raise ConfigError(f"--base-path {base_path!r} is not a directory")
    return os.path.realpath(base_path)


def _check_timeouts(merged: Mapping[str, Any], tools: Sequence[ToolSpec]) -> None:
    cap = merged["max_timeout_s"]
    if merged["cmd_timeout_s"] > cap:
        raise ConfigError(
            f"--cmd-timeout {merged['cmd_timeout_s']:g} is above --max-timeout {cap:g}, which would cut it short; "
            "raise --max-timeout or lower --cmd-timeout"
        )
    for t in tools:
        if t.timeout_s is not None and t.timeout_s > cap:
            raise ConfigError(f"{t.source}: tool {t.name!r}: timeout_s {t.timeout_s:g} is above --max-timeout {cap:g}")


def _check_exposure(merged: Mapping[str, Any], tokens: Sequence[str]) -> None:
    """A network transport reachable from other machines needs a token (or ``--insecure-no-auth``)."""
    if merged["transport"] == "stdio" or tokens or merged["insecure_no_auth"] or loopback(merged["bind"]):
        return
    raise ConfigError(
        f"--bind {merged['bind']} is reachable from other machines and no token is set: anyone who reaches it "
        "could run the tools. Set MCP_EXEC_AUTH_TOKEN (or --auth-token-file), bind 127.0.0.1, or pass "
        "--insecure-no-auth if a proxy in front authenticates every request"
    )


def _check_audit_log(audit_log: str | None, rotate: Any) -> None:
    if audit_log and audit_log != "-":
        folder = os.path.dirname(os.path.abspath(audit_log))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ConfigError(f"--audit-log {audit_log!r}: folder {folder} does not exist or is not writable")
    if rotate and audit_log in (None, "-"):
        raise ConfigError("--audit-rotate needs --audit-log PATH (a file)")


def _limits(merged: Mapping[str, Any], search_path: str) -> tuple[Limits, str | None]:
    """The ``--limit-*`` caps and the prlimit program that applies them."""
    prlimit_path = shutil.which("prlimit", path=search_path)
    fsize = merged["limit_fsize"]
    if fsize is None and prlimit_path is not None:
        # A '>' redirection (or any file a command writes) is capped like its captured output, by default.
        fsize = merged["max_output_bytes"] * FSIZE_PER_OUTPUT
    limits = Limits(
        memory_bytes=merged["limit_memory"],
        cpu_s=merged["limit_cpu"],
        fsize_bytes=fsize,
        nofile=merged["limit_nofile"],
        nproc=merged["limit_nproc"],
    )
    if not limits.any():
        return limits, None
    if prlimit_path is None:
        raise ConfigError(
            "--limit-* options need the prlimit program (util-linux) and it is not on PATH; "
            "install util-linux or drop the limits"
        )
    return limits, prlimit_path


def _check_network(merged: dict[str, Any]) -> None:
    host, sep, port = str(merged["bind"]).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--bind {merged['bind']!r} must be HOST:PORT (e.g. 127.0.0.1:3344, [::1]:3344)")
    if bool(merged["certfile"]) != bool(merged["keyfile"]):
        raise ConfigError("--certfile and --keyfile go together")
    for option in ("certfile", "keyfile"):
        if merged[option] and not os.path.isfile(merged[option]):
            raise ConfigError(f"--{option} {merged[option]!r} is not a file")
    if merged["certfile"]:
        _check_tls(merged["certfile"], merged["keyfile"])
    for ip in merged["forwarded_allow_ips"]:
        try:
            ipaddress.ip_network(ip, strict=False)
        except ValueError:
            raise ConfigError(f"--forwarded-allow-ips: {ip!r} is not an IP address or network") from None
    for origin in merged["cors_origins"]:
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ConfigError(
                f"--cors-origins: {origin!r} is not an origin: give scheme://host[:port] without a path "
                "(https://app.example.com, http://localhost:*); '*' alone is not accepted: name the origins"
            )
    root = merged["root_path"]
    if root and (not root.startswith("/") or root.endswith("/")):
        raise ConfigError(f"--root-path {root!r} must start with '/' and not end with it (e.g. /exec)")


def _check_workers(merged: Mapping[str, Any], tools: Sequence[ToolSpec]) -> None:
    """``--workers`` above 1 shares the port between processes that share nothing else: what lives in one
    worker's memory across requests (a stateful session, a job) would be reached only by the connections the
    kernel happens to give that worker."""
    count = merged["workers"]
    if count <= 1:
        return
    elsewhere = "run one worker, or N instances behind a proxy that keeps each client on one (README: Scale-out)"
    if merged["stateful"]:
        raise ConfigError(
            f"--workers {count} cannot serve --stateful sessions: a session lives in the worker that opened it, "
            f"and a client's next connection may reach another; drop --stateful, or {elsewhere}"
        )
    background = [t.name for t in tools if t.background] + (
        ["shell_execute"] if merged["background"] and (merged["allow_commands"] or merged["allow_patterns"]) else []
    )
    if background:
        raise ConfigError(
            f"--workers {count} cannot serve background tools ({', '.join(background)}): a job lives in the worker "
            f"that started it, and job_output or tasks/get may reach another; {elsewhere}"
        )


def loopback(bind: str) -> bool:
    """Whether ``HOST:PORT`` listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    host = bind.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve to any address: count it as reachable


def _check_tls(certfile: str, keyfile: str) -> None:
    """Load the TLS pair as the server will, so a bad one is a start-up line, not a traceback."""
    import ssl  # ~10 ms: only when TLS is configured

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except OSError as e:  # ssl.SSLError is an OSError too
        if isinstance(e, ssl.SSLError):
            why = "the key does not match the certificate" if e.reason == "KEY_VALUES_MISMATCH" else "not PEM"
        else:
            why = e.strerror or str(e)
        raise ConfigError(
            f"--certfile {certfile!r} / --keyfile {keyfile!r}: cannot load the TLS certificate and key ({why}); "
            "give a PEM certificate (chain) and the PEM private key that matches it, both readable by this user"
        ) from None


_BIND_ADVICE = {
    errno.EADDRINUSE: "another process listens there: stop it, or choose another port (port 0 takes a free one)",
    errno.EACCES: "ports below 1024 need privileges: choose a higher port",
    errno.EADDRNOTAVAIL: "this machine has no such address: use 127.0.0.1, 0.0.0.0 or one of its own addresses",
}


def check_listen(bind: str) -> None:
    """Bind (and release) ``HOST:PORT`` as the server will, so an address in use is a start-up line.

    Run before serving and by ``--dry-run``; the server binds for real a moment later.
    """
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--bind {bind}: cannot resolve {host!r} ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn and trio-websocket do
        try:
            probe.bind(address)
        except OSError as e:
            advice = _BIND_ADVICE.get(e.errno or 0, "choose another address or port")
            raise ConfigError(f"--bind {bind}: cannot listen there ({e.strerror}); {advice}") from None


def _tokens(merged: dict[str, Any]) -> tuple[str, ...]:
    tokens = [merged["auth_token"]] if merged["auth_token"] else []
    path = merged["auth_token_file"]
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise ConfigError(f"--auth-token-file {path!r}: {e.strerror}") from None
        from_file = [line for line in lines if line and not line.startswith("#")]
        if not from_file:
            raise ConfigError(f"--auth-token-file {path!r} holds no token")
        tokens += from_file
    if merged["transport"] != "stdio":
        for token in tokens:
            if len(token) < 16 or any(c.isspace() for c in token):
                raise ConfigError("an auth token must be at least 16 characters, without spaces")
    return tuple(tokens)


def detect_sandbox(settings: Settings) -> sandbox.Sandbox:
    """The sandbox for these settings (``ConfigError`` when ``--sandbox bwrap``/``--sandbox-require`` cannot be met)."""
    s = settings
    audit = s.log.audit_log if s.log.audit_log not in (None, "-") else None
    return sandbox.detect(
        s.sandbox.mode,
        base=s.policy.base_path or os.getcwd(),
        ro=s.sandbox.ro,
        rw=s.sandbox.rw,
        # The server's own files never appear inside, even under the base path.
        secret_files=[
            p for p in (s.config_path, s.network.auth_token_file, audit, s.network.certfile, s.network.keyfile) if p
        ],
        search_path=s.runner.search_path,
        require=s.sandbox.require,
    )
