"""Root conftest: service fixtures (Kafka, Redis) for every test folder live in services.py.

Under CI the property tests draw their examples from a fixed seed per test
(`derandomize`): a CI run is reproducible, and a counterexample found by chance shows up
in a developer's run, where the examples are random, not as a one-off CI failure."""

import os

from hypothesis import settings

pytest_plugins = ["services"]

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
