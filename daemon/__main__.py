"""``python -m daemon``: the dvfs FUSE daemon, as ``dvfs mount`` starts it.

A URL mount's S3 client (boto3's import and set-up, the slowest part of starting)
is begun in a thread before the daemon's own modules are imported, so the two
overlap; the source opened later takes it (``vfs.backends.preconnect``).
"""

import argparse
import sys

from vfs import preconnect


def _preconnect(argv: list[str]) -> None:
    """Begin connecting to the source if it is an S3 URL (no check: the daemon does that)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--source", default="")
    p.add_argument("--endpoint-url")
    try:
        known, _ = p.parse_known_args(argv)
    except SystemExit:  # a bad command line: main() says what is wrong with it
        return
    preconnect(known.source, known.endpoint_url)


if __name__ == "__main__":
    _preconnect(sys.argv[1:])
    from daemon.service import main

    sys.exit(main())
