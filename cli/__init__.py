"""The ``guardreasoner-vl`` command line: the top layer, one module per subcommand (see :mod:`cli.main`).

Commands are thin: they parse options (shared ones are defined once in :mod:`cli.options`), call
the library functions of the layer below (``data_prep``, ``inference``, ``evaluation``, ``recipe``,
``demo``) and print a summary.
"""
