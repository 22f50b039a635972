"""Pub/sub brokers: the contract in `base`, one module per backend.

Backends are registered by module path, so a broker's driver is imported only when a component
of its type is defined.
"""

from __future__ import annotations

from tether.components import registry

#: Dapr component type -> "module:factory" taking a ComponentSpec.
BACKENDS: dict[str, str] = {
    "pubsub.sqlite": "tether.components.pubsub.sqlite:SqlitePubSub",
    "pubsub.redis": "tether.components.pubsub.redis:RedisPubSub",
    "pubsub.jetstream": "tether.components.pubsub.jetstream:JetStreamPubSub",
    "pubsub.rabbitmq": "tether.components.pubsub.rabbitmq:RabbitMQPubSub",
    "pubsub.mqtt3": "tether.components.pubsub.mqtt3:Mqtt3PubSub",
}


def register() -> None:
    """Add the built-in brokers to the component registry (idempotent)."""
    for type_name, target in BACKENDS.items():
        registry.register(type_name, "v1", target)
