"""Issue 15 §6: one composition root reads the environment.

`Settings.from_env` (streams/config.py) and `WorkerSettings.from_env` (streams/compose.py)
read `SENDGATE_*` and the standard OTEL_* variables; every other module of the package gets
its settings as arguments. The guard parses each module (docstrings and help texts may name
the variables) and fails on any access to the process environment elsewhere.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import streams
from streams.app.telemetry import Telemetry, _tracer_provider
from streams.config import Settings, ViewSettings, child_environment, policy_file
from streams.view.projection import DEFAULT_NAMESPACE, StatusView

PACKAGE = Path(streams.__file__).parent
ROOTS = frozenset({PACKAGE / "config.py", PACKAGE / "compose.py"})
ENV_NAMES = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})


def environment_reads(source: str) -> list[int]:
    """Line numbers where `source` touches the process environment through `os`."""
    tree = ast.parse(source)
    os_names = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(a.name in ENV_NAMES or a.name == "*" for a in node.names):
                lines.append(node.lineno)
        elif (isinstance(node, ast.Attribute) and node.attr in ENV_NAMES
              and isinstance(node.value, ast.Name) and node.value.id in os_names):
            lines.append(node.lineno)
    return lines


def test_only_the_composition_root_reads_the_environment() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50 and set(modules) >= ROOTS
    offenders = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in modules if path not in ROOTS
        if (lines := environment_reads(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, (
        "read the setting in streams/config.py (Settings) or streams/compose.py "
        f"(WorkerSettings) and pass it in: {offenders}"
    )
    for root in ROOTS:  # the guard sees the reads it lets through
        assert environment_reads(root.read_text(encoding="utf-8"))


@pytest.mark.parametrize("source", [
    "import os\nx = os.environ.get('SENDGATE_X')",
    "import os\nx = os.environ['SENDGATE_X']",
    "import os\nx = os.getenv('SENDGATE_X', '1')",
    "import os as o\nenv = {**o.environ}",
    "from os import environ\nx = environ['A']",
    "from os import getenv as g\nx = g('A')",
    "def f():\n    import os\n    return dict(os.environ)",
])
def test_the_guard_catches_every_form(source: str) -> None:
    assert environment_reads(source)


@pytest.mark.parametrize("source", [
    '"""Set SENDGATE_TOPIC_PREFIX or os.environ."""',
    "import os\nos.getpid()",
    "env = {'SENDGATE_X': '1'}\nx = env.get('SENDGATE_X')",
])
def test_the_guard_ignores_mentions_and_other_os_calls(source: str) -> None:
    assert environment_reads(source) == []


def test_settings_read_the_read_side_and_telemetry_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "SENDGATE_TOPIC_PREFIX": "p.", "SENDGATE_LOGLEVEL": "debug",
        "SENDGATE_VIEW_NAMESPACE": "ns:", "SENDGATE_VIEW_MAX_PENDING": "7",
        "SENDGATE_VIEW_TTL_SECONDS": "60", "SENDGATE_STATUS_HOST": "0.0.0.0",
        "SENDGATE_STATUS_PORT": "9999", "OTEL_TRACES_EXPORTER": " Console ",
        "OTEL_SERVICE_NAME": "svc", "SENDGATE_POLICY_FILE": "policies/default.toml",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.topic_prefix, s.loglevel) == ("p.", "debug")
    assert s.view == ViewSettings("ns:", 7, 60, "0.0.0.0", 9999)
    assert (s.traces_exporter, s.service_name) == ("console", "svc")
    assert s.policy_file == policy_file() == Path("policies/default.toml")


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENDGATE_TOPIC_PREFIX", "SENDGATE_LOGLEVEL", "SENDGATE_VIEW_NAMESPACE",
                 "SENDGATE_VIEW_MAX_PENDING", "SENDGATE_VIEW_TTL_SECONDS",
                 "SENDGATE_STATUS_HOST", "SENDGATE_STATUS_PORT", "OTEL_TRACES_EXPORTER",
                 "OTEL_SERVICE_NAME", "SENDGATE_POLICY_FILE"):
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert (s.topic_prefix, s.loglevel) == ("", "warning")
    assert s.view == ViewSettings(None, 20000, None, "127.0.0.1", 8088)
    assert (s.traces_exporter, s.service_name) == ("none", None)
    assert s.policy_file is None and policy_file() is None


def test_status_view_takes_the_view_settings() -> None:
    view = StatusView.from_settings(ViewSettings("ns:", 7, 60), "redis://127.0.0.1:1/0")
    assert (view.namespace, view.max_pending, view.ttl_seconds) == ("ns:", 7, 60)
    flag = StatusView.from_settings(ViewSettings("ns:"), "redis://127.0.0.1:1/0",
                                    namespace="flag:")
    assert flag.namespace == "flag:"
    default = StatusView.from_settings(ViewSettings(), "redis://127.0.0.1:1/0")
    assert (default.namespace, default.ttl_seconds) == (DEFAULT_NAMESPACE, None)


def test_telemetry_exporter_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # the setting, not this, decides
    off = dataclasses.replace(Settings.from_env(), traces_exporter="none")
    assert Telemetry.from_settings(off).tracing is False
    provider = _tracer_provider("console", "svc")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "svc"
    provider.shutdown()


def test_child_environment_overlays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENDGATE_APP_ID", "outer")
    monkeypatch.setenv("SG_KEEP", "1")
    env = child_environment({"SENDGATE_APP_ID": "inner"})
    assert env["SENDGATE_APP_ID"] == "inner" and env["SG_KEEP"] == "1"


def test_a_command_takes_the_setting_and_its_flag_overrides_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from streams.cli import main

    monkeypatch.setenv("SENDGATE_TOPIC_PREFIX", "env.")
    assert main(["topics", "describe"]) == 0
    assert "env.orders  [" in capsys.readouterr().out
    assert main(["topics", "describe", "--topic-prefix", ""]) == 0  # an empty flag counts
    out = capsys.readouterr().out
    assert "env.orders" not in out and "\norders  [" in "\n" + out
