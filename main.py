"""Launch HDM Studio (same as the ``hdm-studio`` console script)."""

from __future__ import annotations

import sys

from studio.app import main

if __name__ == "__main__":
    sys.exit(main())
