"""amazon-ecs-volume-plugin: a Docker volume plugin for EFS and S3 Files (SPEC §13).

Layout: ``drivers`` validates options and builds mount commands (pure),
``state`` holds the volume registry, reference counts and the JSON state
(pure, with the side effects injected), ``mount`` runs mount(8)/umount(8)
and reads /proc/self/mountinfo, ``server`` speaks Docker's plugin protocol
over a Unix socket.
"""

from __future__ import annotations

PLUGIN_NAME = "amazon-ecs-volume-plugin"
DEFAULT_SOCKET = "/run/docker/plugins/amazon-ecs-volume-plugin.sock"
SOCKET_ENV = "ECS_VOLUME_PLUGIN_SOCKET"
LOG_FILE_NAME = "ecs-volume-plugin.log"
