"""amazon-ecs-volume-plugin: a Docker volume plugin for EFS and S3 Files (SPEC §13).

Layout: ``drivers`` validates options and builds mount commands (pure),
``state`` is the state document in the Go plugin's format (pure),
``registry`` applies each request to the volumes and their mount counts
(with the side effects injected), ``host`` runs mount(8)/umount(8), reads
/proc/self/mountinfo and reads/writes the state file, ``protocol`` maps
Docker's plugin requests to the registry, ``connections`` bounds and times
the client connections (pure), ``server`` serves it all on a Unix socket.

May import: ``ecs_init.core`` only (it is its own program).
"""

from __future__ import annotations

PLUGIN_NAME = "amazon-ecs-volume-plugin"
DEFAULT_SOCKET = "/run/docker/plugins/amazon-ecs-volume-plugin.sock"
SOCKET_ENV = "ECS_VOLUME_PLUGIN_SOCKET"
