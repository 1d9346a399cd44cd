"""The network transports' one gate, pure: Host/Origin patterns, the Bearer token, the client key, ``server.CLIENT``."""

from __future__ import annotations

import contextvars

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings

from trio_exec.config import NetworkSettings
from trio_exec.server import CLIENT
from trio_exec.transports.gate import (
    Admitted,
    Gate,
    Patterns,
    Refused,
    bearer,
    default_allowed,
    fingerprint,
    header,
    peer_key,
    split_bind,
)

TOKEN = b"test-token-" + b"x" * 16
OTHER = b"other-token-" + b"y" * 16
names = st.sampled_from(["localhost", "127.0.0.1", "[::1]", "mcp.example", "mcp.example.evil", "local"])
ports = st.integers(min_value=0, max_value=65535)
# Values a client may send: names, ports, and what sits near them (an empty port, a second colon, a suffix).
values = st.one_of(
    names,
    st.builds("{}:{}".format, names, ports),
    st.builds("{}:{}".format, names, st.sampled_from(["", "*", "evil", "80:80", "80.evil"])),
    st.text(alphabet="lochst.:*0189[]", max_size=14),
)
patterns = st.lists(st.one_of(names, st.builds("{}:*".format, names), st.builds("{}:{}".format, names, ports)))


def gate(tokens: tuple[bytes, ...] = ()) -> Gate:
    hosts, origins = default_allowed("127.0.0.1:3344")
    return Gate(hosts=Patterns(hosts), origins=Patterns(origins), tokens=tokens)


def test_the_default_lists_name_the_bind_address_and_localhost_on_any_port() -> None:
    hosts, origins = default_allowed("10.1.2.3:8000")
    assert hosts == ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*", "10.1.2.3",
                     "10.1.2.3:*"]  # fmt: skip
    assert "https://10.1.2.3:*" in origins
    assert "http://localhost" in origins
    assert default_allowed("0.0.0.0:8000")[0] == default_allowed("127.0.0.1:1")[0]  # a wildcard bind is no name
    assert "[fe80::1]:*" in default_allowed("[fe80::1]:8000")[0]
    assert split_bind("[::1]:8000") == ("::1", 8000)


@given(names, ports, ports)
def test_a_host_with_another_port_never_matches_an_exact_pattern(name: str, port: int, other: int) -> None:
    listed = Patterns([f"{name}:{port}"])
    assert listed.match(f"{name}:{port}")
    assert listed.match(f"{name}:{other}") == (port == other)
    assert not listed.match(name)


@given(names, ports)
def test_a_wildcard_port_pattern_matches_its_name_with_any_port_but_not_the_bare_name(name: str, port: int) -> None:
    assert Patterns([f"{name}:*"]).match(f"{name}:{port}")
    assert not Patterns([f"{name}:*"]).match(name)
    assert Patterns([name, f"{name}:*"]).match(name)


@given(names, names, ports)
def test_a_pattern_never_matches_another_name(name: str, other: str, port: int) -> None:
    listed = Patterns([name, f"{name}:*", f"{name}:{port}"])
    assert listed.match(f"{other}:{port}") == (other == name)


@given(patterns, st.one_of(st.none(), values))
def test_hosts_match_as_the_sdk_matches_them(listed: list[str], host: str | None) -> None:
    sdk = TransportSecurityMiddleware(TransportSecuritySettings(allowed_hosts=listed))
    ours = Gate(hosts=Patterns(listed), origins=Patterns([]), tokens=())
    assert ours.host_allowed(host) == sdk._validate_host(host)


@given(patterns, st.one_of(st.none(), values), st.sampled_from(["http://", "https://", ""]))
def test_origins_match_as_the_sdk_matches_them(listed: list[str], origin: str | None, scheme: str) -> None:
    allowed = [scheme + p for p in listed]
    presented = None if origin is None else scheme + origin
    sdk = TransportSecurityMiddleware(TransportSecuritySettings(allowed_origins=allowed))
    ours = Gate(hosts=Patterns([]), origins=Patterns(allowed), tokens=())
    assert ours.origin_allowed(presented) == sdk._validate_origin(presented)


def test_a_missing_host_is_refused_and_a_missing_origin_is_not() -> None:
    assert not gate().host_allowed(None)
    assert not gate().host_allowed("")
    assert gate().origin_allowed(None)
    assert gate().origin_allowed("")
    assert not gate().origin_allowed("http://evil.example")
    assert gate().origin_allowed("http://localhost:6274")
    assert not gate().host_allowed("evil.example")
    assert gate().host_allowed("127.0.0.1:3344")


def test_explicit_lists_replace_the_defaults_and_extra_origins_are_added() -> None:
    network = NetworkSettings(allowed_hosts=("mcp.example:*",), allowed_origins=("https://app.example",))
    built = Gate.build(network, ["", TOKEN.decode()], extra_origins=["https://cors.example"])
    assert built.hosts.listed == ("mcp.example:*",)
    assert built.origins.listed == ("https://app.example", "https://cors.example")
    assert built.tokens == (TOKEN,)  # an empty token accepts nothing
    defaults = Gate.build(NetworkSettings(), [], extra_origins=["https://cors.example"])
    assert defaults.hosts.listed == tuple(default_allowed(NetworkSettings().bind)[0])
    assert defaults.origins.listed == (*default_allowed(NetworkSettings().bind)[1], "https://cors.example")


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (None, None),
        (b"Bearer " + TOKEN, TOKEN),
        (b"bearer   " + TOKEN + b"  ", TOKEN),
        (b"BEARER " + TOKEN, TOKEN),
        (b"Bearer ", None),
        (b"Bearer    ", None),
        (b"Bearer", None),
        (b"Basic " + TOKEN, None),
        (TOKEN, None),
    ],
)
def test_the_bearer_token_is_read_from_an_authorization_value(value: bytes | None, token: bytes | None) -> None:
    assert bearer(value) == token


def test_the_first_header_of_a_name_is_read() -> None:
    headers = [(b"Host", b"a"), (b"host", b"b"), (b"origin", b"o")]
    assert header(headers, b"host") == b"a"
    assert header(headers, b"authorization") is None


def test_without_tokens_every_client_is_admitted_under_its_address() -> None:
    assert gate().admit(None, peer_key("10.0.0.1")) == Admitted("ip:10.0.0.1", authenticated=False)
    assert gate().admit(b"anything", "ip:10.0.0.1") == Admitted("ip:10.0.0.1", authenticated=False)


def test_a_missing_token_and_a_wrong_token_are_told_apart() -> None:
    guarded = gate((TOKEN, OTHER))
    assert guarded.admit(None, "ip:x") == Refused("missing")
    assert guarded.admit(b"", "ip:x") == Refused("missing")
    assert guarded.admit(TOKEN + b"z", "ip:x") == Refused("invalid")
    assert guarded.admit(TOKEN[:-1], "ip:x") == Refused("invalid")


def test_each_accepted_token_is_admitted_under_its_own_fingerprint() -> None:
    guarded = gate((TOKEN, OTHER))
    first, second = guarded.admit(TOKEN, "ip:x"), guarded.admit(OTHER, "ip:x")
    assert first == Admitted(fingerprint(TOKEN), authenticated=True)
    assert second == Admitted(fingerprint(OTHER), authenticated=True)
    assert first != second


@given(st.binary(min_size=16, max_size=64))
def test_a_fingerprint_is_stable_and_never_shows_the_token(token: bytes) -> None:
    name = fingerprint(token)
    assert name == fingerprint(token)
    assert name.startswith("token:")
    assert len(name) == len("token:") + 12  # shorter than any token the CLI accepts: it cannot hold one


@given(st.binary(max_size=40))
def test_only_an_accepted_token_is_admitted(presented: bytes) -> None:
    verdict = gate((TOKEN,)).admit(presented, "ip:x")
    assert isinstance(verdict, Admitted) == (presented == TOKEN)


def test_entering_names_the_client_for_the_calls_of_this_context() -> None:
    admitted = Admitted(fingerprint(TOKEN), authenticated=True)

    def inside() -> str:
        gate().enter(admitted)
        return CLIENT.get()

    assert contextvars.copy_context().run(inside) == fingerprint(TOKEN)
    assert CLIENT.get() == "stdio"  # another context is untouched
