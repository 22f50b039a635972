"""Dapr resource documents (Component, Subscription, Resiliency, ...): models and YAML loading."""
