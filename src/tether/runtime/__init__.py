"""The data plane: the Dapr API served for each App ID."""
