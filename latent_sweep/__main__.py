from __future__ import annotations

from latent_sweep.cli import main

raise SystemExit(main())
