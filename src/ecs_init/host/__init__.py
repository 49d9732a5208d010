"""The host preparation: one module per pre-start/post-stop step, each with ``setup(ctx)`` (and
``teardown(ctx)`` where there is something to undo), run in the order of ``actions.PRE_START`` /
``actions.POST_STOP``.

- ``gpu`` (+ ``nvml``): NVIDIA facts for the agent (SPEC §9).
- ``apparmor`` (+ ``apparmor_profile``, the profile text): SPEC §8.
- ``loopback``: route_localnet and docker0's accept_ra (SPEC §6).
- ``ipv6_route``: the credentials route on IPv6-only hosts (SPEC §6).
- ``netfilter`` (+ ``netrules``, the pure rule planner): SPEC §7.
- ``ebs``: the EBS task-attach mount directory.
- ``context``: ``HostContext``, what each step (and every action) gets:
  the configuration, the command runner, and Docker, connected lazily.

May import: ``core`` and ``docker``.
"""
