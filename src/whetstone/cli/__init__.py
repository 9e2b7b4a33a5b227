"""The ``whetstone`` command line (see ``whetstone --help``)."""
