"""``python -m gradviz.cli`` runs the ``gradviz`` command (as ``python -m gradviz`` does)."""

import sys

from gradviz.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
