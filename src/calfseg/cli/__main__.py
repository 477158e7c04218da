"""``python -m calfseg.cli``."""

from calfseg.cli import main

raise SystemExit(main())
