"""ecs-init: the ECS container-instance init system, in Python."""

__version__ = "1.105.1-py1"
# The agent version a download fetches and the bundled tarball stands in for.
AGENT_VERSION = "v1.105.1"
