"""The operator's commands: ``status``, ``check`` (and ``check --network``), ``render``, ``collect``.

Read-only: they never change the host. ``report`` holds what they share
(arguments, the quick Docker connection, the agent's endpoint, times and
sizes for people, check results). ``check`` and ``render`` call the same
builders and planners ``start`` and ``pre-start`` use, so they cannot
disagree with them.

May import: everything below (``agent``, ``host``, ``docker``, ``core``).
"""
