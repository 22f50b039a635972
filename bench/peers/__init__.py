"""Peer engines measured with the same workload shapes as Tether."""
