"""A PostgreSQL catalog that tells the truth about the snapshot.

DuckDB's own ``pg_catalog`` views mix DuckDB type ids (``pg_attribute.atttypid``) with
PostgreSQL oids (``pg_type.oid``), and lack ``regclass``, ``pg_collation`` and most of the
functions psql, pgjdbc and SQLAlchemy call. So the catalog is built once per opened
snapshot, as Arrow tables computed from DuckDB's ``duckdb_tables()``/``duckdb_columns()``
(types mapped to PostgreSQL oids, dbt's column comments as ``pg_description``), and each
session registers them under ``tdw_pg_*`` names with temp macros for the functions. A
statement that mentions the catalog is rewritten (outside string literals) to use them:
``pg_catalog.pg_class`` -> ``tdw_pg_class``, ``'x'::regclass`` -> an oid lookup,
``OPERATOR(pg_catalog.~)`` -> ``~``. Statements that do not mention it are not touched.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

from warehouse import sqlguard
from warehouse.pgwire.types import FORMAT_NAMES, PG_TYPES, duckdb_oid

PG_CATALOG, PUBLIC, INFO = 11, 2200, 13000
SYSTEM_CLASSES = {
    "pg_class": 1259,
    "pg_type": 1247,
    "pg_attribute": 1249,
    "pg_proc": 1255,
    "pg_namespace": 2615,
    "pg_constraint": 2606,
    "pg_database": 1262,
    "pg_index": 2610,
}
EMPTY = {  # catalog tables clients join against that have no rows here: name -> columns
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_attrdef": "oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgname VARCHAR, tgisinternal BOOLEAN, tgenabled VARCHAR, tgparentid BIGINT",
    "pg_policy": "oid BIGINT, polrelid BIGINT, polname VARCHAR, polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR, polcmd VARCHAR",
    "pg_statistic_ext": "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxkind VARCHAR[], stxstattarget INTEGER, stxkeys SMALLINT[]",
    "pg_publication": "oid BIGINT, pubname VARCHAR, puballtables BOOLEAN, pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_rel": "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[]",
    "pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
    "pg_partitioned_table": "partrelid BIGINT, partstrat VARCHAR",
    "pg_foreign_table": "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
    "pg_enum": "oid BIGINT, enumtypid BIGINT, enumsortorder DOUBLE, enumlabel VARCHAR",
    "pg_sequence": "seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, seqmax BIGINT, "
    "seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_depend": "classid BIGINT, objid BIGINT, objsubid INTEGER, refclassid BIGINT, refobjid BIGINT, refobjsubid INTEGER, deptype VARCHAR",
    "pg_rewrite": "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR",
    "pg_extension": "oid BIGINT, extname VARCHAR, extnamespace BIGINT, extversion VARCHAR",
    "pg_proc": "oid BIGINT, proname VARCHAR, pronamespace BIGINT, prorettype BIGINT, proargtypes BIGINT[], "
    "prokind VARCHAR, proretset BOOLEAN, proargnames VARCHAR[], proallargtypes BIGINT[], "
    "proargmodes VARCHAR[], proargdefaults VARCHAR, proisagg BOOLEAN, prolang BIGINT, prosrc VARCHAR",
    "pg_tablespace": "oid BIGINT, spcname VARCHAR",
    "pg_stat_activity": "datname VARCHAR, pid INTEGER, usename VARCHAR, application_name VARCHAR, state VARCHAR, query VARCHAR",
}
TABLES = (
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_index",
    "pg_constraint",
    "pg_description",
    "pg_collation",
    "pg_opclass",
    "pg_am",
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_settings",
    *EMPTY,
)
MACROS = {
    "pg_get_userbyid": "(x) AS 'tdw'",
    "current_setting": "(x, missing := false) AS (SELECT m_s.setting FROM tdw_pg_settings m_s WHERE m_s.name = lower(x))",
    "pg_table_is_visible": "(x) AS true",
    "pg_type_is_visible": "(x) AS true",
    "pg_collation_is_visible": "(x) AS true",
    "pg_function_is_visible": "(x) AS true",
    "has_schema_privilege": "(a, b, c := NULL) AS true",
    "has_table_privilege": "(a, b, c := NULL) AS true",
    "has_database_privilege": "(a, b, c := NULL) AS true",
    "pg_get_expr": "(x, y, z := NULL) AS NULL::VARCHAR",
    "pg_get_indexdef": "(x, y := 0, z := false) AS (SELECT m_i.indexdef FROM tdw_pg_index m_i WHERE m_i.indexrelid = x)",
    "pg_get_constraintdef": "(x, y := false) AS (SELECT m_c.condef FROM tdw_pg_constraint m_c WHERE m_c.oid = x)",
    "pg_get_viewdef": "(x, y := false) AS (SELECT m_v.viewdef FROM tdw_pg_class m_v WHERE m_v.oid = x)",
    "pg_encoding_to_char": "(x) AS 'UTF8'",
    "pg_total_relation_size": "(x) AS 0",
    "pg_relation_size": "(x) AS 0",
    "pg_relation_is_publishable": "(x) AS false",
    "pg_tablespace_location": "(x) AS ''",
    "obj_description": "(x, c := NULL) AS (SELECT m_d.description FROM tdw_pg_description m_d WHERE m_d.objoid = x AND m_d.objsubid = 0)",
    "col_description": "(x, n) AS (SELECT m_e.description FROM tdw_pg_description m_e WHERE m_e.objoid = x AND m_e.objsubid = n)",
    "shobj_description": "(x, c) AS NULL::VARCHAR",
    "format_type": "(t, m) AS coalesce((SELECT m_t.fmt FROM tdw_pg_type m_t WHERE m_t.oid = t), '???')",
    "array_upper": "(a, d) AS len(a)",
    "array_lower": "(a, d) AS 1",
    "pg_expandarray": "(a) AS unnest(list_transform(range(1, len(a) + 1), lambda i: {'x': a[i], 'n': i}))",
    "regclass": "(x) AS CASE regexp_replace(x, '^pg_catalog[.]', '') "
    + " ".join(f"WHEN '{k}' THEN {v}" for k, v in SYSTEM_CLASSES.items())
    + " ELSE coalesce((SELECT m_r.oid FROM tdw_pg_class m_r WHERE m_r.relname = x OR m_r.qualname = x "
    "ORDER BY m_r.qualname = x DESC LIMIT 1), -1) END",
    "pg_is_in_recovery": "() AS false",
    "to_regtype": "(x) AS (SELECT m_u.oid FROM tdw_pg_type m_u WHERE m_u.typname = x OR m_u.fmt = x LIMIT 1)",
    "to_regclass": "(x) AS (SELECT m_g.oid FROM tdw_pg_class m_g WHERE m_g.relname = x OR m_g.qualname = x "
    "ORDER BY m_g.qualname = x DESC LIMIT 1)",
    "regclass_name": "(x) AS coalesce((SELECT m_q.qualname FROM tdw_pg_class m_q WHERE m_q.oid = x), x::VARCHAR)",
    **{
        f: "(x, y := NULL, z := NULL) AS NULL::VARCHAR"
        for f in (
            "pg_get_statisticsobjdef_columns",
            "pg_get_statisticsobjdef",
            "pg_get_triggerdef",
            "pg_get_ruledef",
            "pg_get_partkeydef",
            "pg_get_partition_constraintdef",
            "pg_get_function_arguments",
            "pg_get_function_result",
            "pg_get_serial_sequence",
        )
    },
    "txid_current": "() AS 1",
    "inet_server_addr": "() AS '127.0.0.1'",
    "inet_server_port": "() AS 5433",
    "pg_postmaster_start_time": "() AS now()",
    "quote_ident": "(x) AS '\"' || x || '\"'",
}
_FUNCS = re.compile(
    r"\b(?:pg_catalog\.|information_schema\._)?(" + "|".join(sorted(MACROS, key=len, reverse=True)) + r")\s*\(", re.I
)
_TABLES = re.compile(r"(?<![\w.\"])(?:pg_catalog\.)?(" + "|".join(sorted(TABLES, key=len, reverse=True)) + r")\b", re.I)
_LITERAL = re.compile(r"('(?:[^']|'')*')")
_MENTIONS = re.compile(
    r"pg_|::\s*reg|operator\s*\(|format_type|description\s*\(|"
    r"has_\w+_privilege|array_(upper|lower)|_pg_expand|inet_server|quote_ident|txid",
    re.I,
)


def mart_grains(project: Path | None = None) -> dict[str, list[str]]:
    """Each mart's grain, from its ``unique_key`` test in the dbt project's YAML: the marts are
    built by CTAS and carry no constraint, so this is what is reported as their primary key."""
    project = project or Path(__file__).resolve().parents[2] / "dbt_project"
    grains: dict[str, list[str]] = {}
    for path in sorted((project / "models" / "marts").glob("**/*.yml")):
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        for model in doc.get("models", []) or []:
            for test in model.get("data_tests", []) or []:
                if isinstance(test, dict) and "unique_key" in test:
                    cols = (test["unique_key"].get("arguments") or test["unique_key"]).get("columns")
                    if cols:
                        grains[model["name"]] = list(cols)
    return grains


def _type_rows() -> dict:
    rows = {
        k: []
        for k in (
            "oid",
            "typname",
            "typnamespace",
            "typowner",
            "typlen",
            "typbyval",
            "typtype",
            "typcategory",
            "typisdefined",
            "typdelim",
            "typrelid",
            "typelem",
            "typarray",
            "typbasetype",
            "typtypmod",
            "typndims",
            "typnotnull",
            "typcollation",
            "typdefault",
            "typinput",
            "typoutput",
            "typreceive",
            "fmt",
        )
    }
    for oid, (name, length, cat, arr) in PG_TYPES.items():
        for o, n, elem, ln, c in ((oid, name, 0, length, cat), (arr, "_" + name, oid, -1, "A")):
            vals = (
                o,
                n,
                PG_CATALOG,
                10,
                ln,
                ln in (1, 2, 4, 8),
                "b",
                c,
                True,
                ",",
                0,
                elem,
                0 if elem else arr,
                0,
                -1,
                0,
                False,
                100 if name in ("text", "varchar") else 0,
                None,
                n + "in",
                n + "out",
                n + "recv",
                FORMAT_NAMES.get(o, name) if not elem else FORMAT_NAMES.get(elem, name) + "[]",
            )
            for k, v in zip(rows, vals):
                rows[k].append(v)
    return rows


class Catalog:
    """The snapshot's catalog, as PostgreSQL presents it."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        schemas = [
            r[0]
            for r in q(
                "SELECT DISTINCT schema_name FROM duckdb_schemas() WHERE NOT internal "
                "AND database_name = current_database() ORDER BY 1"
            )
        ]
        ns = {"pg_catalog": PG_CATALOG, "information_schema": INFO}
        ns.update({s: (PUBLIC if s == "public" else 16384 + i) for i, s in enumerate(schemas)})
        rels = q(
            "SELECT schema_name, table_name, 'r', comment, NULL FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name, view_name, 'v', comment, sql FROM duckdb_views() "
            "WHERE NOT internal AND database_name = current_database() ORDER BY 1, 2"
        )
        rel_oid = {(s, t): 20000 + i * 2 for i, (s, t, *_) in enumerate(rels)}
        cols = q(
            "SELECT schema_name, table_name, column_name, column_index, data_type, is_nullable, comment "
            "FROM duckdb_columns() WHERE database_name = current_database() ORDER BY 1, 2, 4"
        )
        cons = q(
            "SELECT schema_name, table_name, constraint_type, constraint_column_indexes, constraint_column_names "
            "FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
        )
        declared = {(s, tb) for s, tb, ct, *_ in cons if ct == "PRIMARY KEY"}
        colnames = {}
        for c in cols:
            colnames.setdefault((c[0], c[1]), []).append(c[2])
        grains = mart_grains()
        for (s, tb), names in colnames.items():
            grain = grains.get(tb) if s == "marts" else None
            if grain and (s, tb) not in declared and all(g in names for g in grain):
                cons.append((s, tb, "PRIMARY KEY", [names.index(g) for g in grain], grain))
        self.tables: dict[str, pa.Table] = {}
        t = self.tables
        t["pg_namespace"] = pa.table(
            {
                "oid": list(ns.values()),
                "nspname": list(ns),
                "nspowner": [10] * len(ns),
                "nspacl": pa.nulls(len(ns), pa.list_(pa.string())),
            }
        )
        ncols = {}
        for s, tb, *_ in cols:
            ncols[(s, tb)] = ncols.get((s, tb), 0) + 1
        t["pg_class"] = pa.table(
            {
                "oid": [rel_oid[(s, n)] for s, n, *_ in rels] + [1000 + i for i in range(len(cons))],
                "relname": [n for _, n, *_ in rels]
                + [
                    f"{tb}_pkey" if ct == "PRIMARY KEY" else f"{tb}_{'_'.join(names)}_key"
                    for _, tb, ct, _, names in cons
                ],
                "qualname": [f"{s}.{n}" for s, n, *_ in rels]
                + [f"{s}.{tb}_idx{i}" for i, (s, tb, *_) in enumerate(cons)],
                "relnamespace": [ns[s] for s, *_ in rels] + [ns[s] for s, *_ in cons],
                "relkind": [k for _, _, k, *_ in rels] + ["i"] * len(cons),
                "relnatts": [ncols.get((s, n), 0) for s, n, *_ in rels] + [len(x[3]) for x in cons],
                "viewdef": [v for *_, v in rels] + [None] * len(cons),
            }
        )
        n = t["pg_class"].num_rows
        indexed = {(s, tb) for s, tb, *_ in cons}
        t["pg_class"] = t["pg_class"].append_column(
            "relhasindex", pa.array([(s, tb) in indexed for s, tb, *_ in rels] + [False] * len(cons))
        )
        for name, v in (
            ("relowner", 10),
            ("relam", 0),
            ("reltablespace", 0),
            ("reltuples", -1.0),
            ("relpages", 0),
            ("relisshared", False),
            ("relpersistence", "p"),
            ("relchecks", 0),
            ("relhasrules", False),
            ("relhastriggers", False),
            ("relhassubclass", False),
            ("relrowsecurity", False),
            ("relforcerowsecurity", False),
            ("relispartition", False),
            ("reltoastrelid", 0),
            ("reltype", 0),
            ("reloftype", 0),
            ("relreplident", "d"),
            ("relispopulated", True),
            ("relfilenode", 0),
            ("relallvisible", 0),
        ):
            t["pg_class"] = t["pg_class"].append_column(name, pa.array([v] * n))
        for name in ("reloptions", "relacl"):
            t["pg_class"] = t["pg_class"].append_column(name, pa.nulls(n, pa.list_(pa.string())))
        t["pg_class"] = t["pg_class"].append_column("relpartbound", pa.nulls(n, pa.string()))
        pk_cols = {(s, tb, c) for s, tb, ct, _, names in cons if ct == "PRIMARY KEY" for c in names}
        oids = [duckdb_oid(c[4]) for c in cols]
        t["pg_attribute"] = pa.table(
            {
                "attrelid": [rel_oid[(s, tb)] for s, tb, *_ in cols],
                "attname": [c[2] for c in cols],
                "atttypid": oids,
                "attnum": pa.array([c[3] for c in cols], pa.int16()),
                "attnotnull": [(not c[5]) or (c[0], c[1], c[2]) in pk_cols for c in cols],
                "atttypmod": [-1] * len(cols),
                "attlen": [PG_TYPES.get(o, ("", -1))[1] for o in oids],
                "attisdropped": [False] * len(cols),
                "atthasdef": [False] * len(cols),
                "attidentity": [""] * len(cols),
                "attgenerated": [""] * len(cols),
                "attcollation": [100 if o in (25, 1043) else 0 for o in oids],
                "attndims": [0] * len(cols),
                "attstattarget": [-1] * len(cols),
                "attislocal": [True] * len(cols),
                "attinhcount": [0] * len(cols),
                "attstorage": ["p"] * len(cols),
                "attalign": ["d"] * len(cols),
                "atthasmissing": [False] * len(cols),
                "attacl": pa.nulls(len(cols), pa.list_(pa.string())),
                "attoptions": pa.nulls(len(cols), pa.list_(pa.string())),
                "attfdwoptions": pa.nulls(len(cols), pa.list_(pa.string())),
                "attcompression": [""] * len(cols),
            }
        )
        t["pg_type"] = pa.table(_type_rows())
        idx = [
            (1000 + i, rel_oid[(s, tb)], ct, [k + 1 for k in keys], names, s, tb)
            for i, (s, tb, ct, keys, names) in enumerate(cons)
            if (s, tb) in rel_oid
        ]
        t["pg_index"] = pa.table(
            {
                "indexrelid": [x[0] for x in idx],
                "indrelid": [x[1] for x in idx],
                "indnatts": pa.array([len(x[3]) for x in idx], pa.int16()),
                "indnkeyatts": pa.array([len(x[3]) for x in idx], pa.int16()),
                "indisunique": [True] * len(idx),
                "indisprimary": [x[2] == "PRIMARY KEY" for x in idx],
                "indisexclusion": [False] * len(idx),
                "indimmediate": [True] * len(idx),
                "indisclustered": [False] * len(idx),
                "indisvalid": [True] * len(idx),
                "indisready": [True] * len(idx),
                "indislive": [True] * len(idx),
                "indisreplident": [False] * len(idx),
                "indkey": pa.array([x[3] for x in idx], pa.list_(pa.int16())),
                "indoption": pa.array([[0] * len(x[3]) for x in idx], pa.list_(pa.int16())),
                "indclass": pa.array([[0] * len(x[3]) for x in idx], pa.list_(pa.int64())),
                "indcollation": pa.array([[0] * len(x[3]) for x in idx], pa.list_(pa.int64())),
                "indexprs": pa.nulls(len(idx), pa.string()),
                "indpred": pa.nulls(len(idx), pa.string()),
                "indnullsnotdistinct": [False] * len(idx),
                "indexdef": [
                    f"CREATE UNIQUE INDEX {x[6]}_pkey ON {x[5]}.{x[6]} USING btree ({', '.join(x[4])})" for x in idx
                ],
            }
        )
        t["pg_constraint"] = pa.table(
            {
                "oid": [x[0] + 500 for x in idx],
                "conname": [f"{x[6]}_pkey" if x[2] == "PRIMARY KEY" else f"{x[6]}_{'_'.join(x[4])}_key" for x in idx],
                "connamespace": [ns[x[5]] for x in idx],
                "contype": ["p" if x[2] == "PRIMARY KEY" else "u" for x in idx],
                "condeferrable": [False] * len(idx),
                "condeferred": [False] * len(idx),
                "convalidated": [True] * len(idx),
                "conrelid": [x[1] for x in idx],
                "contypid": [0] * len(idx),
                "conindid": [x[0] for x in idx],
                "conparentid": [0] * len(idx),
                "confrelid": [0] * len(idx),
                "confupdtype": [" "] * len(idx),
                "confdeltype": [" "] * len(idx),
                "confmatchtype": [" "] * len(idx),
                "conislocal": [True] * len(idx),
                "coninhcount": [0] * len(idx),
                "connoinherit": [True] * len(idx),
                "conkey": pa.array([x[3] for x in idx], pa.list_(pa.int16())),
                "confkey": pa.nulls(len(idx), pa.list_(pa.int16())),
                "conbin": pa.nulls(len(idx), pa.string()),
                "condef": [f"{'PRIMARY KEY' if x[2] == 'PRIMARY KEY' else 'UNIQUE'} ({', '.join(x[4])})" for x in idx],
            }
        )
        desc = [(rel_oid[(s, n)], 0, c) for s, n, _, c, _ in rels if c] + [
            (rel_oid[(c[0], c[1])], c[3], c[6]) for c in cols if c[6]
        ]
        t["pg_description"] = pa.table(
            {
                "objoid": [d[0] for d in desc],
                "classoid": [1259] * len(desc),
                "objsubid": [d[1] for d in desc],
                "description": [d[2] for d in desc],
            }
        )
        t["pg_collation"] = pa.table(
            {
                "oid": [100, 950],
                "collname": ["default", "C"],
                "collnamespace": [PG_CATALOG] * 2,
                "collowner": [10, 10],
                "collprovider": ["d", "c"],
                "collencoding": [-1, -1],
                "collcollate": ["C", "C"],
                "collctype": ["C", "C"],
                "collisdeterministic": [True] * 2,
            }
        )
        t["pg_am"] = pa.table({"oid": [403], "amname": ["btree"], "amtype": ["i"]})
        t["pg_opclass"] = pa.table(
            {
                "oid": pa.array([], pa.int64()),
                "opcname": pa.array([], pa.string()),
                "opcmethod": pa.array([], pa.int64()),
                "opcdefault": pa.array([], pa.bool_()),
            }
        )
        t["pg_roles"] = pa.table(
            {
                "oid": [10],
                "rolname": ["tdw"],
                "rolsuper": [False],
                "rolinherit": [True],
                "rolcreaterole": [False],
                "rolcreatedb": [False],
                "rolcanlogin": [True],
                "rolreplication": [False],
                "rolconnlimit": [-1],
                "rolbypassrls": [False],
            }
        )
        t["pg_user"] = pa.table({"usename": ["tdw"], "usesysid": [10], "usesuper": [False], "usecreatedb": [False]})
        pg = {
            "server_version": "15.0",
            "server_version_num": "150000",
            "timezone": "UTC",
            "standard_conforming_strings": "on",
            "client_encoding": "UTF8",
            "max_identifier_length": "63",
            "search_path": "marts, main",
            "datestyle": "ISO, MDY",
            "default_transaction_read_only": "on",
            "transaction_read_only": "on",
            "integer_datetimes": "on",
            "default_table_access_method": "heap",
            "lc_collate": "C",
            "lc_ctype": "C",
        }
        duck = [(k.lower(), str(v)) for k, v in q("SELECT name, value FROM duckdb_settings()") if k.lower() not in pg]
        self.duckdb_settings = {k for k, _ in duck}
        self.settings = pa.table(
            {"name": list(pg) + [k for k, _ in duck], "setting": list(pg.values()) + [v for _, v in duck]}
        )
        for name, spec in EMPTY.items():
            struct = con.sql(f"SELECT NULL::STRUCT({spec}) AS s").to_arrow_table().schema.field(0).type
            t[name] = pa.table({f.name: pa.array([], f.type) for f in struct})

        self.tables["pg_database"] = pa.table(
            {
                "oid": [16384],
                "datname": ["tdw"],
                "datdba": [10],
                "encoding": [6],
                "datcollate": ["C"],
                "datctype": ["C"],
                "daticulocale": pa.nulls(1, pa.string()),
                "daticurules": pa.nulls(1, pa.string()),
                "datlocprovider": ["c"],
                "datistemplate": [False],
                "datallowconn": [True],
                "datconnlimit": [-1],
                "datacl": pa.nulls(1, pa.list_(pa.string())),
                "dattablespace": [1663],
            }
        )
        self.tables["pg_settings"] = self.settings
        self.db = self._materialise()

    def _materialise(self) -> duckdb.DuckDBPyConnection:
        """The catalog as tables and macros in a DuckDB file of its own, then opened read-only
        and locked down like the snapshot (and unlinked: the open file keeps its data), so
        catalog queries need no per-session setup and cannot change it."""
        fd, name = tempfile.mkstemp(prefix="tdw-pgcatalog-", suffix=".duckdb")
        os.close(fd)
        path = Path(name)
        path.unlink()
        try:
            con = duckdb.connect(str(path))
            for table_name, table in self.tables.items():
                con.register("src", table)
                con.execute(f"CREATE TABLE tdw_{table_name} AS SELECT * FROM src")
                con.unregister("src")
            con.execute(";\n".join(f"CREATE MACRO tdw_{n}{body}" for n, body in MACROS.items()))
            con.close()
            return sqlguard.open_read_only(path)
        finally:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".wal").unlink(missing_ok=True)

    def cursor(self, database: str = "tdw") -> duckdb.DuckDBPyConnection:
        """A cursor on the catalog for one session, whose ``pg_database`` names the database the
        client connected to (as its ``current_database()`` does): a temp view, private to the
        cursor, shadows the shared table."""
        cur = self.db.cursor()
        name = cur.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
        datname = "'" + database.replace("'", "''") + "'"
        cur.execute(
            f'CREATE TEMP VIEW tdw_pg_database AS SELECT * REPLACE ({datname} AS datname) FROM "{name}".main.tdw_pg_database'
        )
        return cur

    @staticmethod
    def rewrite(sql: str) -> str:
        """``sql`` with the PostgreSQL catalog idioms mapped onto this catalog (unchanged when
        it does not mention any)."""
        if not _MENTIONS.search(sql):
            return sql
        parts = _LITERAL.split(sql)
        out = []
        for i, part in enumerate(parts):
            if i % 2:  # a string literal: kept, unless cast to regclass
                out.append(part)
                continue
            if out and re.match(r"\s*::\s*(pg_catalog\.)?regclass\b", part):
                out[-1] = f"tdw_regclass({out[-1]})"
                part = re.sub(r"^\s*::\s*(pg_catalog\.)?regclass\b", "", part)
            part = re.sub(r"^\s*::\s*(pg_catalog\.)?regproc\b", "", part, flags=re.I) if out else part
            if out and re.match(r"\s*::\s*(pg_catalog\.)?regtype\b", part, re.I):
                out[-1] = f"tdw_to_regtype({out[-1]})"
                part = re.sub(r"^\s*::\s*(pg_catalog\.)?regtype\b", "", part, flags=re.I)
            if (
                len(out) > 1
                and re.search(r"CAST\s*\(\s*$", out[-2], re.I)
                and re.match(r"\s*AS\s+(pg_catalog\.)?regclass\s*\)", part, re.I)
            ):
                out[-2] = re.sub(r"CAST\s*\(\s*$", "", out[-2], flags=re.I)
                out[-1] = f"tdw_regclass({out[-1]})"
                part = re.sub(r"^\s*AS\s+(pg_catalog\.)?regclass\s*\)", "", part, flags=re.I)
            part = re.sub(
                r"CAST\s*\(\s*(\$\d+)\s+AS\s+(?:pg_catalog\.)?regclass\s*\)",
                r"tdw_regclass(\1::VARCHAR)",
                part,
                flags=re.I,
            )
            part = re.sub(
                r"([\w.]+)\s*::\s*(?:pg_catalog\.)?regtype\s*::\s*(?:pg_catalog\.)?text\b",
                r"tdw_format_type(\1, NULL)",
                part,
                flags=re.I,
            )
            part = re.sub(
                r"([\w.]+)\s*::\s*(?:pg_catalog\.)?regclass\s*::\s*(?:pg_catalog\.)?text\b",
                r"tdw_regclass_name(\1)",
                part,
                flags=re.I,
            )
            part = re.sub(
                r"\bAS\s+(?:pg_catalog\.)?(regclass|regtype|regnamespace|regproc|oid)\s*\)",
                "AS BIGINT)",
                part,
                flags=re.I,
            )
            part = re.sub(r"\bjson_build_object\s*\(", "json_object(", part, flags=re.I)
            part = re.sub(r"OPERATOR\s*\(\s*pg_catalog\.([^)\s]+)\s*\)", r"\1", part, flags=re.I)
            part = re.sub(r"\bCOLLATE\s+(pg_catalog\.)?\"?(default|C)\"?", "", part, flags=re.I)
            part = re.sub(
                r"::\s*(pg_catalog\.)?(regclass|regtype|regnamespace|oid)\b(\[\])?",
                lambda m: "::BIGINT" + (m.group(3) or ""),
                part,
                flags=re.I,
            )
            part = re.sub(
                r"::\s*(pg_catalog\.)?(name|int2vector|oidvector|\"char\"|char|regproc|regprocedure)\b(?!\s*\()",
                "::VARCHAR",
                part,
                flags=re.I,
            )
            part = re.sub(r"::\s*(pg_catalog\.)?text\b", "::VARCHAR", part, flags=re.I)
            part = re.sub(r"::\s*(pg_catalog\.)?int2\b", "::SMALLINT", part, flags=re.I)
            part = _FUNCS.sub(lambda m: f"tdw_{m.group(1).lower()}(", part)
            part = _TABLES.sub(lambda m: f"tdw_{m.group(1).lower()}", part)
            part = re.sub(r"\bpg_catalog\.", "", part, flags=re.I)
            out.append(part)
        return "".join(out)
