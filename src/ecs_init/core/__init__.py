"""The ground floor: what every other package uses, and that knows nothing of Docker, the host or the agent.

- ``settings``: the one table of every setting this program reads (name,
  kind, default, range, source, doc); ``config``: the process environment
  plus the merged ecs.config files, read through that table; ``envfile``:
  the one env-file reader; ``paths``: every host path (SPEC §2) under an
  optional prefix; ``platform``: the os-release platform table (SPEC §3);
  ``known_keys``: the agent's configuration keys (for ``check``).
- ``exitcodes`` (this program's and the agent's, apart) and ``errors``.
- ``logsetup`` (logfmt, rotation), ``redact`` (secrets, SPEC §11).
- ``lock`` (flock between invocations), ``cmd`` (the one adapter for
  external commands, ``LC_ALL=C``), ``fsutil`` (atomic writes, reads that
  never block or follow a link), ``backoff``.
- ``record``: ``@dataclass`` for the start path without loading
  ``dataclasses`` (the type checker reads the standard one).

May import: the standard library and other ``core`` modules only.
"""
