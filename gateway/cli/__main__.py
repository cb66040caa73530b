"""``python -m gateway.cli``: the ``unifaas`` command."""

import sys

from gateway.cli.main import main

sys.exit(main())
