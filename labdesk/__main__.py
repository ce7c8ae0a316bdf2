from labdesk.cli.main import main

raise SystemExit(main())
