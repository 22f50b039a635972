pytest_plugins = [
    "tests.fixtures.tether",
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.brokers",
]
