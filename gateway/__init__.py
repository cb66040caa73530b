"""The user-facing edge: HTTP gateway and the ``unifaas`` command-line interface."""
