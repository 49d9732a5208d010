from ecs_init.cli import run

raise SystemExit(run())
