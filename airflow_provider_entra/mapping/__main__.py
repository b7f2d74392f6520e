"""``python -m airflow_provider_entra.mapping check MAPPING [--sample EXPORT]`` / ``... schema``."""

from __future__ import annotations

import os
import sys

from airflow_provider_entra.mapping._check import main

if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the output was piped into `head` or a pager that quit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    raise SystemExit(code)
