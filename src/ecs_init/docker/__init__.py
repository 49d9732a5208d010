"""The Docker Engine boundary: this program's own Engine API client.

- ``errors``: the only exceptions that cross the boundary (``NotFound``,
  ``Conflict``, ``EngineUnavailable``, ``EngineError``).
- ``api``: the ``Engine`` protocol (what supervision, the image cache,
  netfilter and the operator commands need), the API version range and the
  small pure helpers that interpret Engine answers.
- ``transport``: HTTP/1.1 over the daemon's unix socket (standard library only).
- ``client``: the implementation (``connect``, ``connect_quick``).

May import: ``core`` only. Nothing outside this package imports anything
Docker-specific. This file
imports nothing, so importing the errors or the protocol never pulls in
the client.
"""
