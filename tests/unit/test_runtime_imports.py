"""Issue 15 §2: the default worker never imports faust, mode or aiokafka."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import streams.cli
import streams.commands.worker
import streams.compose
import streams.runtime.tasks
import streams.app.telemetry
import streams.view.follower
import streams.commands.demo
bad = sorted(m for m in sys.modules if m.split('.')[0] in {'faust', 'mode', 'aiokafka'})
print(','.join(bad))
"""


def test_default_worker_modules_do_not_import_faust() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == ""


def test_faust_imports_live_only_in_modules_named_faust() -> None:
    from pathlib import Path

    import streams

    root = Path(streams.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        imports_faust = any(
            line.lstrip().startswith(("import faust", "from faust", "import mode",
                                      "from mode", "import aiokafka", "from aiokafka"))
            for line in text.splitlines()
        )
        if imports_faust and "faust" not in path.name:
            offenders.append(str(path.relative_to(root)))
    assert not offenders
