pytest_plugins = ["tests.fixtures.tether", "tests.fixtures.postgres"]
