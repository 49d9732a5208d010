"""The agent's life: what it is, where it comes from, how it runs and is kept running.

- ``identity``: its container name, image and introspection endpoint.
- ``spec`` (pure): the exact container create body (SPEC §3), from the
  configuration and the ``hostfacts`` gathered from the host.
- ``cache``: the image cache state and pre-start's decision (SPEC §4);
  ``sources`` (pure: partitions, buckets, URLs), ``download``, ``imds``,
  ``proxy``, ``progress``: the verified download (SPEC §10).
- ``policy`` (pure: exit codes, backoff, rollback watch), ``supervisor``
  (the loop), ``upgrade`` (exit 42 and rollback), ``state`` and ``events``
  (what ``status`` reads), ``stop``, ``notify`` (systemd readiness and
  watchdog): SPEC §5.

May import: ``core``, ``docker`` and ``host``.
"""
