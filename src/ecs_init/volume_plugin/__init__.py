"""amazon-ecs-volume-plugin: a Docker volume plugin for EFS and S3 Files (SPEC §13).

Layout: ``drivers`` validates options and builds mount commands (pure),
``state`` holds the volume registry, mount counts and the state document in
the Go plugin's format (pure, with the side effects injected), ``host`` runs
mount(8)/umount(8), reads /proc/self/mountinfo and reads/writes the state
file, ``connections`` bounds and times the client connections (pure),
``server`` speaks Docker's plugin protocol over a Unix socket.
"""

from __future__ import annotations

PLUGIN_NAME = "amazon-ecs-volume-plugin"
DEFAULT_SOCKET = "/run/docker/plugins/amazon-ecs-volume-plugin.sock"
SOCKET_ENV = "ECS_VOLUME_PLUGIN_SOCKET"
LOG_FILE_NAME = "ecs-volume-plugin.log"
