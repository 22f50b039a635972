"""Typed reads of a pub/sub component's metadata (errors carry the pub/sub error code)."""

from __future__ import annotations

from tether import errors
from tether.components import _options


class Options(_options.Options):
    error = errors.PubSubComponentInvalid
    label = "pubsub component"
