"""gRPC adapter of the Dapr API."""
