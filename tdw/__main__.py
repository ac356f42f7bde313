"""`python -m tdw` runs the command line, as the `tdw` script does."""

from tdw.cli import main

if __name__ == "__main__":
    main()
