"""``python -m airflow_provider_entra.mapping check MAPPING [--sample EXPORT]`` / ``... schema``."""

from __future__ import annotations

from airflow_provider_entra.mapping._check import main

if __name__ == "__main__":
    raise SystemExit(main())
