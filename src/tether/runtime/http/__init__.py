"""HTTP adapter of the Dapr API."""
