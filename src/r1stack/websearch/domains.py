"""Which host names the proxy deals with: an operator's allow list (when set, nothing else) and deny list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IDNA (punycode) form, so that one name has one spelling."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


@dataclass(frozen=True)
class DomainFilter:
    """A domain covers itself and its subdomains; deny wins over allow."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def build(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> DomainFilter:
        return cls(
            allow=tuple(normalize_host(d) for d in allow if d.strip()),
            deny=tuple(normalize_host(d) for d in deny if d.strip()),
        )

    def refusal(self, host: str) -> str | None:
        """Why `host` is refused, or None when it is allowed."""
        host = normalize_host(host)
        for domain in self.deny:
            if _matches(host, domain):
                return f"{host} is on the proxy's deny list ({domain})"
        if self.allow and not any(_matches(host, domain) for domain in self.allow):
            return f"{host} is not on the proxy's allow list"
        return None
