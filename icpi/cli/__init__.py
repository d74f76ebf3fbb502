"""The ``icpi`` command line: one command, one module per verb."""
