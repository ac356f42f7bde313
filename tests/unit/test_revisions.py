import pytest

from ingest.errors import TdwError
from ingest.revisions import parse_spec, select


def test_single_list_and_range():
    assert parse_spec("step1000") == [1000]
    assert parse_spec("step2,step1, 4") == [1, 2, 4]
    assert parse_spec("step1000:5000:1000") == [1000, 2000, 3000, 4000, 5000]
    assert parse_spec("0:3") == [0, 1, 2, 3]
    assert parse_spec("all") is None


@pytest.mark.parametrize("bad", ["step1000:", "stepx", "1000:10:100", "1:5:0", "a:b:c", "step1:step9:x", "s1"])
def test_malformed_specs_are_clean_errors(bad):
    with pytest.raises(TdwError, match="malformed"):
        parse_spec(bad)


def test_select_orders_by_step_and_requires_existence():
    assert select([512, 1, 0, 1000, 2], "all") == [0, 1, 2, 512, 1000]
    assert select([0, 1000, 2000], "step0:step2000:1000") == [0, 1000, 2000]
    with pytest.raises(TdwError, match="not found: step3000"):
        select([0, 1000, 2000], "step3000")
