"""Who may see what: API key ids map to groups; a document's groups say which keys may retrieve it."""

from __future__ import annotations

from dataclasses import dataclass

from r1stack.config import KBSettings

ADMIN_GROUP = "*"


@dataclass(frozen=True)
class Access:
    """The caller's view: `admin` sees everything; otherwise documents without groups, or sharing one."""

    admin: bool
    groups: frozenset[str]

    def may_see(self, doc_groups: list[str]) -> bool:
        return self.admin or not doc_groups or bool(self.groups.intersection(doc_groups))


ADMIN = Access(admin=True, groups=frozenset())


def access_for_key(settings: KBSettings, key_id: str | None) -> Access:
    """`key_id` None means a server without keys (or the local CLI): the operator, who sees all."""
    if key_id is None:
        return ADMIN
    groups = frozenset(settings.key_groups.get(key_id, []))
    return Access(admin=ADMIN_GROUP in groups, groups=groups)
