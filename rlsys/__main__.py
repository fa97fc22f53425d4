"""`python -m rlsys ...` runs the CLI, so `ray job submit -- python -m rlsys train ...` works."""

from rlsys.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
