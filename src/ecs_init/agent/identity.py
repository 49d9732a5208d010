"""What identifies the agent to this program: its container, its image, its endpoint.

SPEC §3 and §7. (The agent's exit codes are ``core.exitcodes.AgentExit``.)
Importing this module costs nothing, so ``stop`` needs no more than this to
name the container.
"""

AGENT_NAME = "ecs-agent"
AGENT_IMAGE = "amazon/amazon-ecs-agent:latest"
AGENT_REPOSITORY, AGENT_TAG = AGENT_IMAGE.rsplit(":", 1)

# The agent's introspection endpoint: readiness, health and `status` probe it.
INTROSPECTION_PORT = 51678
METADATA_URL = f"http://127.0.0.1:{INTROSPECTION_PORT}/v1/metadata"
