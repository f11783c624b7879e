"""``python -m gradviz`` runs the ``gradviz`` command."""

import sys

from gradviz.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
