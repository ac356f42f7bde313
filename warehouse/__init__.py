"""The warehouse: the DuckDB file, its raw tables and manifest, dbt builds, the CLI."""

import os
from pathlib import Path

DEFAULT_WAREHOUSE = Path(os.environ.get("TDW_WAREHOUSE", "data/warehouse.duckdb"))
