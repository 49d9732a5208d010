"""What identifies the agent to this program: its container, its image, its exit codes.

SPEC §3 and §5. The agent's exit codes are kept apart from this program's
own (``errors.py``). Importing this module costs nothing, so ``stop`` needs
no more than this to name the container.
"""

AGENT_NAME = "ecs-agent"
AGENT_IMAGE = "amazon/amazon-ecs-agent:latest"
AGENT_REPOSITORY, AGENT_TAG = AGENT_IMAGE.rsplit(":", 1)

EXIT_CLEAN = 0  # stop supervising
EXIT_DEBUG = 2  # log the agent's last lines, then back off
EXIT_TERMINAL = 5  # do not restart
EXIT_UPGRADE = 42  # load the desired image, restart at once
