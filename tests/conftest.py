"""Root conftest: service fixtures (Kafka, Redis) for every test folder live in services.py."""

pytest_plugins = ["services"]
