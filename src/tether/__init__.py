"""Tether: a self-hostable runtime for distributed applications, durable workflows and agents."""

__version__ = "0.1.0"
