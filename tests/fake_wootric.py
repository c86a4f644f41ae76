"""``python tests/fake_wootric.py [--port 8765 --seed 7 ...]``: serve the fake Wootric API (the ``fake`` package
next to this file) until SIGTERM or SIGINT, after printing a tap config for it, CXI included, on one line.

``from fake_wootric import FakeWootric`` keeps working; new code imports ``from fake import FakeWootric``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake import STREAMS, FakeWootric  # noqa: E402, F401
from fake.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
