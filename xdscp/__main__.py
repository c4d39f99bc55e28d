"""The `xdscp` executable (and `python -m xdscp`).

SIGINT and SIGTERM are handled before anything else is imported (the command's modules take
most of a second to import): a signal that arrives before a command handles it — while
starting, or during a short command — prints one line and ends the process by that signal
(a shell sees 130 or 143, a service manager a clean stop), never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys

from xdscp.signals import Interrupted, handle_from_start, handled


def main() -> None:
    """Run the `xdscp` command line."""
    handle_from_start()
    try:
        from xdscp.cli import main as cli  # noqa: PLC0415  # after the handlers: see above

        cli()
    except Interrupted as stop:
        for sig in handled():  # from here a signal ends the process at once, never raises
            signal.signal(sig, signal.SIG_DFL)
        print(f"xdscp: {stop}", file=sys.stderr, flush=True)  # no logging yet
        os.kill(os.getpid(), stop.signal)
        sys.exit(128 + stop.signal)  # only if the signal is not delivered at once


if __name__ == "__main__":
    main()
