"""Pub/sub delivery: subscriptions of every kind, routed, retried and dead-lettered."""
