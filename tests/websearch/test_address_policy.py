"""Address and domain policy: every non-public class is refused, trusted CIDRs open exactly what they name."""

from __future__ import annotations

import ipaddress

import pytest

from r1stack.websearch.addresses import AddressPolicy, parse_cidrs
from r1stack.websearch.domains import DomainFilter

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12:3456::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "100.64.0.1": "non-public",
    "169.254.169.254": "cloud metadata",
    "100.100.100.200": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "::ffff:127.0.0.1": "IPv4-mapped",
    "::ffff:10.0.0.1": "IPv4-mapped",
    "::ffff:8.8.8.8": "IPv4-mapped",
    "64:ff9b::a00:1": "embeds the non-public IPv4 address 10.0.0.1",
    "64:ff9b::a9fe:a9fe": "embeds the non-public IPv4 address 169.254.169.254",
    "2002:7f00:1::1": "embeds the non-public IPv4 address 127.0.0.1",
}


@pytest.mark.parametrize("address,label", sorted(REFUSED.items()))
def test_every_non_public_class_is_refused(address, label):
    reason = AddressPolicy().refusal(ipaddress.ip_address(address))
    assert reason is not None and label in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2001:4860:4860::8888", "64:ff9b::808:808"])
def test_public_addresses_pass(address):
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) is None


def test_a_trusted_cidr_opens_exactly_its_addresses():
    policy = AddressPolicy.from_cidrs(["10.20.0.0/16", "fd00:1::/64"])
    assert policy.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert "private" in policy.refusal(ipaddress.ip_address("10.21.0.1"))
    assert "private" in policy.refusal(ipaddress.ip_address("fd00:2::5"))
    assert "loopback" in policy.refusal(ipaddress.ip_address("127.0.0.1"))


def test_metadata_and_mapped_addresses_stay_closed_inside_trusted_cidrs():
    policy = AddressPolicy.from_cidrs(["169.254.0.0/16", "100.64.0.0/10", "::/0"])
    assert policy.refusal(ipaddress.ip_address("169.254.10.10")) is None
    for address in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254", "::ffff:127.0.0.1"):
        assert policy.refusal(ipaddress.ip_address(address)) is not None


def test_a_bad_cidr_names_its_option():
    with pytest.raises(ValueError, match="--trust-cidr: 'ten.0.0.0/8' is not a CIDR"):
        parse_cidrs(["ten.0.0.0/8"], "--trust-cidr")


def test_domain_filter_allow_and_deny_cover_subdomains():
    only = DomainFilter.build(allow=["example.org", "例子.测试"])
    assert only.refusal("example.org") is None
    assert only.refusal("docs.Example.ORG.") is None
    assert only.refusal("xn--fsqu00a.xn--0zwm56d") is None
    assert "allow list" in only.refusal("example.org.evil.com")
    assert "allow list" in only.refusal("notexample.org")
    both = DomainFilter.build(allow=["example.org"], deny=["ads.example.org"])
    assert "deny list" in both.refusal("x.ads.example.org")
    assert both.refusal("www.example.org") is None
    assert DomainFilter.build(deny=["bad.com"]).refusal("good.com") is None
