#!/usr/bin/env python
"""Run Django administrative commands for workload-scheduler."""

import os
import sys


def main() -> None:
    """Point Django at the project settings and run the command line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scheduler_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
