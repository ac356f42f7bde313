"""The composition root: the `tdw` command, `tdw demo` and the handling of user-facing errors.

It depends on every other package (ingest <- warehouse <- analysis <- tdw) and nothing
depends on it, so the command can wire storage to reports without a cycle between them."""
