"""``python -m palsy``: the ``palsy`` command."""

from palsy.scripts.palsy import main

raise SystemExit(main())
