"""ecs-init: the ECS container-instance init system, in Python."""

# The one version string of the program (pyproject.toml reads it; the RPM
# spec and debian/changelog must match it, which the tests check). Scheme:
# <ECS agent version>.post<N> -- the N-th release of this program for that
# agent release. It sorts above every Go ecs-init package of the same agent
# version (1.105.1-<any release>) and below the next agent version, for rpm,
# dpkg and PEP 440 alike (README, "Versions and upgrades").
__version__ = "1.105.1.post1"
# The agent version a download fetches and a bundled tarball is named after.
AGENT_VERSION = "v" + __version__.split(".post")[0]
