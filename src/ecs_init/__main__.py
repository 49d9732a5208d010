from ecs_init.cli import main

raise SystemExit(main())
