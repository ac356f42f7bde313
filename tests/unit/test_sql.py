import pandas as pd
import pytest

from ingest.errors import TdwError
from warehouse.sql import check_read_only, format_frame


@pytest.mark.parametrize(
    "q", ["select 1", "with a as (select 1) select * from a", "describe select 1", "explain select 1", "show tables"]
)
def test_reads_are_allowed(q):
    check_read_only(q)


@pytest.mark.parametrize(
    "q",
    [
        "insert into t values (1)",
        "create table x (a int)",
        "drop table marts.fct_msd",
        "copy (select 1) to '/tmp/x.csv'",
        "attach '/tmp/y.db'",
        "select 1; delete from t",
        "update t set a = 1",
        "install httpfs",
        "set threads = 1",
    ],
)
def test_writes_are_refused(q):
    with pytest.raises(TdwError, match="read-only"):
        check_read_only(q)


def test_syntax_error_is_one_line():
    with pytest.raises(TdwError, match="SQL error") as e:
        check_read_only("selec 1 frm")
    assert "\n" not in str(e.value)


def test_formats():
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, None]})
    assert format_frame(df, "csv") == "a,b\n1,0.5\n2,"
    assert '"a": 1' in format_frame(df, "json")
    table = format_frame(df, "table")
    assert table.splitlines()[0].split("|")[0].strip() == "a" and table.endswith("(2 rows)")
