"""One module per ``palsy`` subcommand, each with ``add_arguments(parser)`` and ``run(args)``."""
