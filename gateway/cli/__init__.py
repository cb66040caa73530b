"""The ``unifaas`` command line: parsing and readable errors (:mod:`~gateway.cli.main`), the
commands that talk to a running platform over HTTP (:mod:`~gateway.cli.commands`,
:mod:`~gateway.cli.asynccommands`) and their thin HTTP client (:mod:`~gateway.cli.client`).

It never imports the HTTP app: a command reaches the platform over HTTP, except ``up``,
``node`` and ``gateway``, which start it (:mod:`gateway.up`, imported when they run).
"""
