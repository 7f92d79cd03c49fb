from postel.cli import main

raise SystemExit(main())
