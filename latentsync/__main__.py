from latentsync.cli import main

raise SystemExit(main())
