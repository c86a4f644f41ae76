"""tap-wootric: a Singer tap for Wootric (InMoment) survey data.

The command-line interface is in tap_wootric.cli. This module imports nothing heavy, so that the
console script's `from tap_wootric import main` is quick and `main` can take over SIGTERM and SIGINT
before singer-python, requests and pendulum are imported: a Ctrl-C during those imports then ends the
tap with exit code 130 and one line, not a traceback.
"""

from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    """The `tap-wootric` console script (`argv`: the arguments, default sys.argv[1:])."""
    from tap_wootric.cancel import Cancellation  # standard library only

    cancellation = Cancellation()
    cancellation.install()
    # A signal during this import is only noted; cli.main stops at its first check.
    from tap_wootric.cli import main as cli_main

    cli_main(argv, cancellation=cancellation)
