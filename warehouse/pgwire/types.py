"""PostgreSQL type oids and value encoding for Arrow results and bind parameters.

Results are encoded a column at a time (Arrow casts to text, then one join per row), which
is what makes large results fast; the row loop only glues pre-encoded fields together.
Text parameters whose type the client left unspecified (oid 0) are passed to DuckDB as
strings, never guessed (a value such as ``'5'`` stays the string ``'5'``); typed ones and
the binary format of the common types are decoded to the matching Python values.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BOOL, BYTEA, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL = 700, 701, 1043, 1082, 1083, 1114, 1184, 1186
NUMERIC, UUID, NAME, CHAR = 1700, 2950, 19, 18

# oid -> (name, typlen, category, array oid); names are PostgreSQL's canonical ones. One
# row a type: its constant above, then the pg_type columns
_PG_TYPE_ROWS = """
BOOL        bool          1  B  1000
BYTEA       bytea        -1  U  1001
CHAR        char          1  S  1002
NAME        name         64  S  1003
INT8        int8          8  N  1016
INT2        int2          2  N  1005
INT4        int4          4  N  1007
TEXT        text         -1  S  1009
OID         oid           4  N  1028
JSON        json         -1  U  199
FLOAT4      float4        4  N  1021
FLOAT8      float8        8  N  1022
VARCHAR     varchar      -1  S  1015
DATE        date          4  D  1182
TIME        time          8  D  1183
TIMESTAMP   timestamp     8  D  1115
TIMESTAMPTZ timestamptz   8  D  1185
INTERVAL    interval     16  T  1187
NUMERIC     numeric      -1  N  1231
UUID        uuid         16  U  2951
"""
PG_TYPES: dict[int, tuple[str, int, str, int]] = {
    globals()[const]: (name, int(typlen), category, int(array))
    for const, name, typlen, category, array in map(str.split, _PG_TYPE_ROWS.strip().splitlines())
}
# format_type()'s spelling, as psql and SQLAlchemy expect it
FORMAT_NAMES = {
    BOOL: "boolean",
    INT8: "bigint",
    INT2: "smallint",
    INT4: "integer",
    FLOAT4: "real",
    FLOAT8: "double precision",
    VARCHAR: "character varying",
    TIMESTAMP: "timestamp without time zone",
    TIMESTAMPTZ: "timestamp with time zone",
    TIME: "time without time zone",
    CHAR: '"char"',
}
DUCKDB_TO_OID = {
    "BOOLEAN": BOOL,
    "TINYINT": INT2,
    "SMALLINT": INT2,
    "UTINYINT": INT2,
    "INTEGER": INT4,
    "USMALLINT": INT4,
    "BIGINT": INT8,
    "UINTEGER": INT8,
    "UBIGINT": NUMERIC,
    "HUGEINT": NUMERIC,
    "UHUGEINT": NUMERIC,
    "FLOAT": FLOAT4,
    "DOUBLE": FLOAT8,
    "VARCHAR": VARCHAR,
    "BLOB": BYTEA,
    "DATE": DATE,
    "TIME": TIME,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "TIMESTAMP_NS": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP,
    "TIMESTAMP_S": TIMESTAMP,
    "INTERVAL": INTERVAL,
    "UUID": UUID,
    "JSON": JSON,
}


def duckdb_oid(type_name: str) -> int:
    """The PostgreSQL oid of a DuckDB column type (``DECIMAL(18,3)`` is numeric; lists,
    structs, maps and enums are text, which is how they are sent)."""
    if type_name.endswith("[]") and "[" not in type_name[:-2]:
        elem = duckdb_oid(type_name[:-2])
        return PG_TYPES[elem][3] if elem in PG_TYPES else TEXT
    base = type_name.split("(")[0].strip().upper()
    return DUCKDB_TO_OID.get(base, NUMERIC if base == "DECIMAL" else TEXT)


ARRAY_OF = {v[3]: k for k, v in PG_TYPES.items()}


# (test, oid) in order: the first that holds names the column's oid (float32 before any float)
_ARROW_KINDS = (
    (pa.types.is_boolean, BOOL),
    (pa.types.is_decimal, NUMERIC),
    (pa.types.is_float32, FLOAT4),
    (pa.types.is_floating, FLOAT8),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), BYTEA),
    (pa.types.is_date, DATE),
    (pa.types.is_time, TIME),
)
_INT_BITS = {8: INT2, 16: INT2, 32: INT4, 64: INT8}  # wider: numeric


def arrow_oid(t: pa.DataType) -> int:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        elem = arrow_oid(t.value_type)
        return PG_TYPES[elem][3] if elem in PG_TYPES and not pa.types.is_nested(t.value_type) else TEXT
    if pa.types.is_integer(t):  # an unsigned integer needs the next wider signed type
        return _INT_BITS.get(t.bit_width * (1 if pa.types.is_signed_integer(t) else 2), NUMERIC)
    if pa.types.is_timestamp(t):
        return TIMESTAMPTZ if t.tz else TIMESTAMP
    return next((oid for test, oid in _ARROW_KINDS if test(t)), TEXT)


def text_array(col: pa.ChunkedArray | pa.Array, oid: int) -> pa.Array:
    """One column in PostgreSQL's text format, as an Arrow string array (vectorised where
    Arrow can: numbers, strings, dates, timestamps; nested values as JSON text)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if oid == BOOL:
        return pc.if_else(col, "t", "f")
    if oid in (FLOAT4, FLOAT8):
        s = pc.cast(col, pa.string())
        for a, b in (("inf", "Infinity"), ("-inf", "-Infinity"), ("nan", "NaN")):
            s = pc.if_else(pc.equal(s, a), b, s)
        return s
    if oid == TIMESTAMP and t.unit == "ns":
        col = col.cast(pa.timestamp("us"))
    if oid in ARRAY_OF:
        elem = ARRAY_OF[oid]
        return pa.array(
            [None if v is None else "{" + ",".join(_array_item(x, elem) for x in v) + "}" for v in col.to_pylist()],
            pa.string(),
        )
    if (
        oid in (TIMESTAMPTZ, BYTEA)
        or pa.types.is_nested(t)
        or pa.types.is_null(t)
        or pa.types.is_duration(t)
        or pa.types.is_interval(t)
    ):
        return pa.array([_text_python(v, oid) for v in col.to_pylist()], pa.string())
    try:
        return pc.cast(col, pa.string())
    except pa.ArrowException:
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _array_item(v, elem: int) -> str:
    """One element of a PostgreSQL array literal (strings always quoted)."""
    if v is None:
        return "NULL"
    if elem == BOOL:
        return "t" if v else "f"
    if elem in (TEXT, VARCHAR, NAME, CHAR, JSON, UUID, DATE, TIMESTAMP, TIMESTAMPTZ, TIME, INTERVAL):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, float) and v != v:
        return "NaN"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return str(v)


def _text_python(v, oid: int) -> str | None:
    if v is None:
        return None
    if oid == BYTEA:
        return "\\x" + v.hex()
    if oid == TIMESTAMPTZ:
        return v.isoformat(sep=" ")
    return v if isinstance(v, str) else json.dumps(v, default=str)


def text_columns(table: pa.Table, oids: list[int]) -> list[list]:
    return [text_array(col, oid).to_pylist() for col, oid in zip(table.columns, oids)]


def _binary_array(col: pa.ChunkedArray, oid: int) -> pa.Array:
    pack = _BINARY[oid]
    return pa.array([None if v is None else pack(v) for v in col.to_pylist()], pa.binary())


SMALL = 64
_I32 = struct.Struct("!i").pack


def _encode_small(table: pa.Table, oids: list[int], binary: list[bool]) -> bytes:
    """A few rows: per value in Python, cheaper than Arrow's per-call overhead."""
    cols = []
    for col, oid, b in zip(table.columns, oids, binary):
        if b and oid in _BINARY:
            vals = [None if v is None else _BINARY[oid](v) for v in col.to_pylist()]
        elif pa.types.is_integer(col.type) or pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            vals = [None if v is None else str(v).encode() for v in col.to_pylist()]
        else:
            vals = [None if v is None else v.encode() for v in text_array(col, oid).to_pylist()]
        cols.append([b"\xff\xff\xff\xff" if v is None else _I32(len(v)) + v for v in vals])
    head = struct.pack("!h", len(cols))
    return b"".join(b"D" + _I32(len(d := b"".join(r)) + 6) + head + d for r in zip(*cols))


def _fixed(values: np.ndarray, width: int) -> pa.Array:
    """Rows of ``width`` raw bytes (a numpy uint8 matrix) as an Arrow binary array."""
    buf = pa.py_buffer(np.ascontiguousarray(values).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, buf]).cast(pa.binary())


def _be(values: np.ndarray, dtype: str) -> np.ndarray:
    return values.astype(dtype).view(np.uint8).reshape(len(values), -1)


_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())


def encode_rows(table: pa.Table, oids: list[int], binary: list[bool]) -> bytes:
    """All of ``table``'s rows as DataRow messages, built by column in Arrow: each field is
    its length prefix joined to its bytes, each row the header joined to its fields
    (``binary_join_element_wise``), so no Python code runs per value; the rows' bytes are
    then one contiguous buffer."""
    n, ncol = table.num_rows, table.num_columns
    if n == 0:
        return b""
    if n <= SMALL:
        return _encode_small(table, oids, binary)
    fields, size = [], np.full(n, 6, np.int64)
    for col, oid, b in zip(table.columns, oids, binary):
        a = _binary_array(col, oid) if b and oid in _BINARY else text_array(col, oid)
        a = a.cast(pa.binary())
        ln = pc.fill_null(pc.binary_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        valid = a.is_valid()
        field = pc.binary_join_element_wise(_fixed(_be(ln, ">i4"), 4), a, b"")
        fields.append(pc.if_else(valid, field, _NULL))
        size += 4 + ln
    header = np.empty((n, 7), np.uint8)
    header[:, 0] = ord("D")
    header[:, 1:5] = _be(size, ">i4")
    header[:, 5:7] = _be(np.full(n, ncol), ">i2")
    rows = pc.binary_join_element_wise(_fixed(header, 7), *fields, b"")
    if not isinstance(rows, pa.Array):
        rows = rows.combine_chunks()
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset : rows.offset + n + 1]
    return rows.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


_EPOCH_D = dt.date(2000, 1, 1)
_EPOCH_T = dt.datetime(2000, 1, 1)
_BINARY = {
    BOOL: lambda v: b"\x01" if v else b"\x00",
    INT2: struct.Struct("!h").pack,
    INT4: struct.Struct("!i").pack,
    INT8: struct.Struct("!q").pack,
    FLOAT4: struct.Struct("!f").pack,
    FLOAT8: struct.Struct("!d").pack,
    TEXT: lambda v: str(v).encode(),
    VARCHAR: lambda v: str(v).encode(),
    BYTEA: bytes,
    DATE: lambda v: struct.pack("!i", (v - _EPOCH_D).days),
    TIMESTAMP: lambda v: struct.pack("!q", (v - _EPOCH_T) // dt.timedelta(microseconds=1)),
}
BINARY_OIDS = set(_BINARY)


def _parse_array(s: str, elem: int) -> list:
    """A one-dimensional PostgreSQL array literal (``{a,"b c",NULL}``) as a list."""
    body, items, i = s.strip()[1:-1], [], 0
    while i < len(body):
        if body[i] == '"':
            j, buf = i + 1, []
            while body[j] != '"':
                if body[j] == "\\":
                    j += 1
                buf.append(body[j])
                j += 1
            items.append("".join(buf))
            i = j + 2
        else:
            j = body.find(",", i)
            j = len(body) if j == -1 else j
            raw = body[i:j].strip()
            items.append(None if raw.upper() == "NULL" else decode_param(raw.encode(), elem, False))
            i = j + 1
    return items


def decode_param(data: bytes | None, oid: int, binary: bool):
    """A bind parameter as the Python value DuckDB should bind."""
    if data is None:
        return None
    if oid in ARRAY_OF and binary:
        ndim, _, elem = struct.unpack_from("!iii", data)
        if ndim == 0:
            return []
        n = struct.unpack_from("!i", data, 12)[0]
        pos, out = 12 + 8 * ndim, []
        for _ in range(n):
            ln = struct.unpack_from("!i", data, pos)[0]
            pos += 4
            out.append(None if ln < 0 else decode_param(data[pos : pos + ln], elem, True))
            pos += max(ln, 0)
        return out
    if oid in ARRAY_OF:
        return _parse_array(data.decode(), ARRAY_OF[oid])
    if binary:
        if oid == BOOL:
            return data != b"\x00"
        if oid in (INT2, INT4, INT8, OID):
            return int.from_bytes(data, "big", signed=True)
        if oid == FLOAT4:
            return struct.unpack("!f", data)[0]
        if oid == FLOAT8:
            return struct.unpack("!d", data)[0]
        if oid == DATE:
            return _EPOCH_D + dt.timedelta(days=struct.unpack("!i", data)[0])
        if oid in (TIMESTAMP, TIMESTAMPTZ):
            return _EPOCH_T + dt.timedelta(microseconds=struct.unpack("!q", data)[0])
        if oid == BYTEA:
            return bytes(data)
        return data.decode()
    s = data.decode()
    if oid == BOOL:
        return s.lower() in ("t", "true", "1", "yes", "on", "y")
    if oid in (INT2, INT4, INT8, OID):
        return int(s)
    if oid in (FLOAT4, FLOAT8):
        return float(s)
    if oid == NUMERIC:
        return Decimal(s)
    if oid == DATE:
        return dt.date.fromisoformat(s)
    if oid == TIMESTAMP:
        return dt.datetime.fromisoformat(s)
    return s
