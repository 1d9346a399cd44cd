"""``python -m trio_exec``."""

from __future__ import annotations

import sys

from trio_exec.cli import main

if __name__ == "__main__":
    sys.exit(main())
