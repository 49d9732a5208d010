from __future__ import annotations

from ecs_init.volume_plugin.server import main

raise SystemExit(main())
