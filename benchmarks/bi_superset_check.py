"""End-to-end BI check: Apache Superset's own code against `tdw serve`.

Not a test (Superset and its ~300 dependencies would double the CI install, and it pins
SQLAlchemy 1.4 and pandas 2.1, which clash with the project's), and not part of `make bench`:
a documented script, run by hand with Superset's Python, that does what Superset does
when a PostgreSQL database is added and used:

1. the Database model (``superset.models.core.Database``) on the URI
   ``postgresql+psycopg2://tdw@HOST:PORT/tdw``, its engine spec resolved (PostgresEngineSpec);
2. "Test connection" and the dataset editor: schema names, the marts' table names
   (``PostgresEngineSpec.get_table_names``), each mart's columns through Superset's
   inspector path (``Database.get_columns``) with the generic type Superset derives from
   them (NUMERIC / STRING / TEMPORAL / BOOLEAN: UNKNOWN means Superset could not type it),
   primary keys;
3. SQL Lab: a raw connection, ``get_cancel_query_id`` (``SELECT pg_backend_pid()``), the
   engine spec's ``execute`` and ``fetch_data`` with a row limit, the result typed by
   Superset's ``SupersetResultSet``; then ``Database.get_df`` (charts' path), compared with
   DuckDB's answer on the same snapshot.

Install Superset into a throwaway virtual environment (not the project's), then run:

    python3.11 -m venv /tmp/superset-venv
    /tmp/superset-venv/bin/pip install apache-superset==6.1.0 psycopg2-binary==2.9.13 \\
        flask-caching==2.3.1 cachetools  # Superset 6.1 breaks on flask-caching 2.5 and lacks cachetools
    /tmp/superset-venv/bin/python benchmarks/bi_superset_check.py \\
        --tdw .venv/bin/tdw --warehouse data/warehouse.duckdb

The script starts ``tdw serve`` (the project's, via ``--tdw``) on a free port, points a
throwaway Superset configuration (SQLite metadata in a temporary folder) at it, prints what
Superset sees and exits non-zero if any mart column comes back untyped or a step fails.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # warehouse.serve_process: stdlib only

from warehouse.serve_process import start_serve  # noqa: E402


def superset_app(folder: Path):
    """A Superset app on a throwaway configuration and an empty SQLite metadata database."""
    config = folder / "superset_config.py"
    config.write_text(
        f"SECRET_KEY = {os.urandom(24).hex()!r}\n"
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{folder / 'superset.db'}'\n"
        "FEATURE_FLAGS = {}\n"
    )
    os.environ["SUPERSET_CONFIG_PATH"] = str(config)
    from superset.app import create_app
    from superset.extensions import db

    app = create_app()
    with app.app_context():
        import superset.models.core  # noqa: F401  (the Log model, among others)
        from flask_appbuilder import Model

        Model.metadata.create_all(db.engine)  # the metadata tables (Superset logs each action), no migrations
    return app


def parse(v: str):
    """A CSV field as DuckDB wrote it: '' is NULL, numbers with a '.' or an exponent are floats."""
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return {"true": True, "false": False}.get(v, v)


def check(uri: str, tdw: str, warehouse: Path) -> list[str]:
    """What Superset sees; the list of failures (empty: all good)."""
    from superset.db_engine_specs.base import GenericDataType
    from superset.models.core import Database
    from superset.result_set import SupersetResultSet
    from superset.sql.parse import Table

    failures: list[str] = []
    db = Database(database_name="tdw", sqlalchemy_uri=uri)
    spec = db.db_engine_spec
    print(f"engine spec: {spec.__name__} (engine {spec.engine!r})")
    with db.get_sqla_engine() as engine, engine.connect() as con:
        print("test connection:", con.exec_driver_sql("select 1").scalar() == 1)
    schemas = sorted(db.get_all_schema_names())
    print("schemas:", ", ".join(schemas))
    tables = sorted(t[0] for t in db.get_all_table_names_in_schema(catalog=None, schema="marts"))
    print(f"marts: {len(tables)} tables")
    if not tables:
        failures.append("no marts listed")
    for table in tables:
        cols = db.get_columns(Table(table, "marts"))
        typed = []
        for c in cols:
            col_spec = spec.get_column_spec(str(c["type"]))
            generic = col_spec.generic_type.name if col_spec else "UNKNOWN"
            if generic == "UNKNOWN":
                failures.append(f"marts.{table}.{c['column_name']}: {c['type']} is untyped in Superset")
            typed.append(f"{c['column_name']} {c['type']} ({generic})")
        # SQL Lab's table panel: indexes and foreign keys through Superset, the primary key through
        # its inspector (Database.get_pk_constraint's JSON conversion turns the column list to None)
        db.get_indexes(Table(table, "marts"))
        db.get_foreign_keys(Table(table, "marts"))
        with db.get_inspector(schema="marts") as insp:
            pk = insp.get_pk_constraint(table, "marts").get("constrained_columns") or []
        described = sum(1 for c in cols if c.get("comment"))
        print(f"  {table}: pk ({', '.join(pk)}); {described}/{len(cols)} described; " + "; ".join(typed))
    # SQL Lab
    sql = db.select_star(Table("fct_msd", "marts"), limit=500, indent=False)  # SQL Lab's table preview
    sql = sql.replace(" LIMIT", " ORDER BY model_id, tensor_name, step LIMIT")  # a stable order to compare
    print("SQL Lab query:", sql)
    with db.get_raw_connection(schema="marts") as conn:
        cursor = conn.cursor()
        pid = spec.get_cancel_query_id(cursor, None)
        t = time.perf_counter()
        spec.execute(cursor, sql, db)
        rows = spec.fetch_data(cursor, 1000)
        elapsed = (time.perf_counter() - t) * 1000
        result = SupersetResultSet(rows, cursor.description, spec)
        kinds = {c["column_name"]: c["type_generic"] for c in result.columns}
        print(
            f"SQL Lab: backend pid {pid}; {len(rows)} rows in {elapsed:.1f} ms; columns "
            + ", ".join(f"{k} {GenericDataType(v).name if v is not None else 'UNKNOWN'}" for k, v in kinds.items())
        )
        if any(v is None for v in kinds.values()):
            failures.append(f"SQL Lab result untyped: {kinds}")
    df = db.get_df(sql, schema="marts")
    out = subprocess.run(
        [tdw, "sql", sql, "--format", "csv", "--warehouse", str(warehouse)], capture_output=True, text=True, check=True
    ).stdout
    want = [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(out))]
    got = df.to_dict("records")

    def equal(g, w) -> bool:  # a value from Superset's DataFrame and one from DuckDB's CSV
        if w is None:
            return g is None or (isinstance(g, float) and math.isnan(g))
        if isinstance(w, float):
            return math.isclose(float(g), w, rel_tol=1e-12)
        return str(g) == str(w)

    bad = [(g, w) for g, w in zip(got, want) if g.keys() != w.keys() or not all(equal(g[k], w[k]) for k in w)]
    same = len(got) == len(want) and not bad
    if bad:
        print("first difference:", bad[0])
    print(f"chart query (Database.get_df): {len(df)} rows, same as `tdw sql` (DuckDB directly): {same}")
    if not same or not want:
        failures.append("get_df differs from DuckDB or is empty")
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tdw", default="tdw", help="the project's tdw executable (e.g. .venv/bin/tdw)")
    ap.add_argument("--warehouse", type=Path, default=Path("data/warehouse.duckdb"))
    a = ap.parse_args()
    from importlib.metadata import version

    print(", ".join(f"{p} {version(p)}" for p in ("apache-superset", "sqlalchemy", "psycopg2-binary", "flask-caching")))
    proc, port = start_serve([a.tdw], a.warehouse)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = superset_app(Path(tmp))
            with app.app_context():
                failures = check(f"postgresql+psycopg2://tdw@127.0.0.1:{port}/tdw", a.tdw, a.warehouse)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for f in failures:
        print("FAIL", f)
    print("Superset check:", "passed" if not failures else f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
