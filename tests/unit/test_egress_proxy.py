"""The egress proxy's decisions, without a network: refusals never resolve or connect."""

from __future__ import annotations

import socket
from typing import Any, Iterator

import pytest

from sandbox import egress_proxy as proxy


@pytest.fixture(autouse=True)
def config(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setattr(proxy, "CONFIG", {"allow": ["pypi.org", "files.pythonhosted.org", "peer:8000",
                                                    "meta.example", "gw.example"],
                                          "deny": ["api.openai.com"], "deny_ips": set(),
                                          "subnet": "172.30.0.0/16"})
    looked_up: list[str] = []
    answers = {"pypi.org": "151.101.0.223", "peer": "172.30.0.3", "meta.example": "169.254.169.254",
               "gw.example": "172.17.0.1"}

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        if host not in answers:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(proxy.socket, "getaddrinfo", fake_getaddrinfo)
    yield looked_up


def test_allowlisted_hosts_and_their_subdomains_on_default_ports() -> None:
    assert proxy.decide("pypi.org", 443) == ("151.101.0.223", "")
    assert proxy.decide("PEER", 8000) == ("172.30.0.3", "")  # inside the egress network


@pytest.mark.parametrize("host,port,needle", [
    ("169.254.169.254", 80, "not on the allowlist"),
    ("172.17.0.1", 2375, "not on the allowlist"),
    ("evil.example", 443, "not on the allowlist"),
    ("pypi.org.evil.example", 443, "not on the allowlist"),
    ("pypi.org", 22, "not on the allowlist"),
    ("peer", 443, "not on the allowlist"),
    ("api.openai.com", 443, "denied"),
])
def test_refused_before_any_lookup(config: list[str], host: str, port: int, needle: str) -> None:
    ip, why = proxy.decide(host, port)
    assert ip == "" and needle in why
    assert config == []  # no DNS, no connection


@pytest.mark.parametrize("host,needle", [("meta.example", "link-local"), ("gw.example", "private address")])
def test_allowlisted_names_resolving_to_forbidden_addresses_are_refused(host: str, needle: str) -> None:
    ip, why = proxy.decide(host, 443)
    assert ip == "" and needle.split()[0] in why
