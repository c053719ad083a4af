"""``python -m scheduler`` and the ``hetsched`` script: the command line, with Ctrl-C during start-up
(the heavy imports take a second or two) ending in one line too."""

from __future__ import annotations

import sys


def run() -> int:
    """Import the command line and run it; exit 130 with one line if interrupted while importing."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        print("hetsched: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
