"""Topic scoping from pub/sub component metadata, as daprd reads it (`pkg/scopes`).

- `allowedTopics: a,b` — the only topics anyone may publish or subscribe to.
- `protectedTopics: c` — topics that need an explicit per-app scope.
- `publishingScopes: app1=a,b;app2=` and `subscriptionScopes: ...` — per App ID topic lists;
  an App ID that is listed may use only its topics (`app2=`: none at all).
"""

from __future__ import annotations

from collections.abc import Mapping

PUBLISHING = "publishingScopes"
SUBSCRIPTION = "subscriptionScopes"


def _lookup(metadata: Mapping[str, str], key: str) -> str:
    lowered = key.lower()
    return next((v for k, v in metadata.items() if k.lower() == lowered), "")


def _topics(value: str) -> list[str]:
    return list(dict.fromkeys(value.replace(" ", "").split(","))) if value else []


def scoped_topics(metadata: Mapping[str, str], scope: str, app_id: str) -> list[str]:
    """The topics `scope` lists for `app_id`; empty when the App ID is not listed."""
    found: list[str] = []
    for entry in _lookup(metadata, scope).replace(" ", "").split(";"):
        app, sep, topics = entry.partition("=")
        if sep and app == app_id:
            found += [t for t in topics.split(",") if t not in found]
    return found


def allowed(metadata: Mapping[str, str], scope: str, app_id: str, topic: str) -> bool:
    """Whether `app_id` may publish (`scope=PUBLISHING`) or subscribe to `topic`."""
    allowed_topics = _topics(_lookup(metadata, "allowedTopics"))
    if allowed_topics and topic not in allowed_topics:
        return False
    protected = topic in _topics(_lookup(metadata, "protectedTopics"))
    scoped = scoped_topics(metadata, scope, app_id)
    if not protected and not scoped:
        return True
    return topic in scoped
