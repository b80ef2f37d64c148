"""``python -m daemon``: the dvfs FUSE daemon, as ``dvfs mount`` starts it."""

import sys

from daemon.service import main

if __name__ == "__main__":
    sys.exit(main())
