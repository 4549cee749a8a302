"""Run an edge runtime in its own process for the reliability tests:
``python edge_child.py CONFIG [fake]``. With ``fake`` it predicts with the FakeModel double;
otherwise it loads the config's bundle like ``planta-edge run``. Prints READY when started."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from edgefakes import FakeModel  # noqa: E402

from planta_edge.cli import EdgeApp  # noqa: E402
from planta_edge.config import EdgeConfig  # noqa: E402


def main() -> None:
    cfg = EdgeConfig.load(sys.argv[1])
    app = EdgeApp(cfg, model=FakeModel() if sys.argv[2:] == ["fake"] else None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    app.start()
    print("READY", flush=True)
    stop.wait()
    app.stop()


if __name__ == "__main__":
    main()
