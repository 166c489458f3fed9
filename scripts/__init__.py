"""Entry points: the ``palsy`` command and reproducible batch jobs."""
