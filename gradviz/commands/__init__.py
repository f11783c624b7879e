"""Sub-commands of the ``gradviz`` CLI; see :mod:`gradviz.cli`."""
