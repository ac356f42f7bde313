"""User-facing errors and their handling, in the composition root.

The error *type*, :class:`TdwError`, is defined in ``ingest.errors``, the lowest layer,
because every package raises it (a bad revision spec in ``ingest``, a refused statement in
``warehouse``, a model without marts in ``analysis``); it is re-exported here. What to do
with an error — one line and exit 1 for bad input or the environment, exit 130 on Ctrl-C,
``internal error`` and exit 2 for a bug — is decided once, here, by the command group.
"""

from __future__ import annotations

import os
import re
import sys

import click

from ingest.errors import TdwError

__all__ = ["Cli", "TdwError"]


class Cli(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TdwError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted: jobs already loaded are kept; rerun to finish the rest", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as e:
            if os.environ.get("TDW_DEBUG") or not _environmental(e):
                raise
            # the disk, the file system or a damaged file, not a bug in tdw: one line, exit 1
            click.echo(f"error: {_one_line(e)}", err=True)
            sys.exit(1)

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except Exception as e:  # a bug, not bad input: still one line unless debugging
            if os.environ.get("TDW_DEBUG"):
                raise
            click.echo(f"internal error: {_one_line(e)} (set TDW_DEBUG=1 for the traceback)", err=True)
            sys.exit(2)


def _environmental(e: Exception) -> bool:
    """Errors of the environment (disk full, permissions, a damaged or foreign DuckDB file),
    which a user fixes, as opposed to bugs in tdw."""
    import duckdb  # lazily: `tdw --help` need not load it

    if isinstance(e, duckdb.InternalException):
        return False
    return isinstance(e, (OSError, duckdb.Error))


def _one_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(e)).strip()
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {text.splitlines()[0][:300]}" if text else type(e).__name__
