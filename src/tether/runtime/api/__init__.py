"""Transport-neutral Dapr API services: HTTP and gRPC adapt these, so they cannot diverge."""
