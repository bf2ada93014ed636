"""``python -m membermkt``: the command line (see :mod:`membermkt.cli`)."""

from membermkt.cli import main

raise SystemExit(main())
