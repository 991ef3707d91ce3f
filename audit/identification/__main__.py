"""``python -m audit.identification CONFIG.toml --data-dir DIR``: run a 1:N identification audit."""

import sys

from .runner import identification_main

if __name__ == "__main__":
    sys.exit(identification_main())
