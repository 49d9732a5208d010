"""The agent's exit codes (SPEC §5), kept apart from this program's own (``errors.py``)."""

EXIT_CLEAN = 0  # stop supervising
EXIT_DEBUG = 2  # log the agent's last lines, then back off
EXIT_TERMINAL = 5  # do not restart
EXIT_UPGRADE = 42  # load the desired image, restart at once
