"""Reading CSV exports of time series: time and value columns, long format, gaps, and the step between times."""

from __future__ import annotations

import numpy as np
import pytest

from seqgen.data.table import (
    Frequency,
    format_time,
    looks_like_table,
    next_times,
    parse_time,
    read_table,
)
from seqgen.errors import DataError, UsageError


def days(*dates: str) -> np.ndarray:
    return np.array(dates, dtype="datetime64[s]")


def test_a_date_and_one_column():
    table = read_table("date,sales\n2020-01-01,10\n2020-01-02,12.5\n2020-01-03,11\n", "shop.csv")
    assert table.names == ["sales"] and table.time_column == "date" and table.value_columns == ["sales"]
    np.testing.assert_array_equal(table.series[0], [10, 12.5, 11])
    np.testing.assert_array_equal(table.times[0], days("2020-01-01", "2020-01-02", "2020-01-03"))
    assert table.frequency == Frequency("D", 1) and table.filled == 0 and table.id_column is None


def test_several_columns_are_several_series_on_one_time():
    table = read_table("month,north,south,region\n2020-01,1,5,x\n2020-02,2,6,y\n", "m.csv")
    assert table.names == ["north", "south"]  # 'region' holds no numbers
    np.testing.assert_array_equal(table.series[1], [5, 6])
    assert table.times[0][1] == np.datetime64("2020-02-01")


def test_columns_chooses_the_series():
    table = read_table("date,a,b,c\n2020-01-01,1,2,3\n2020-01-02,4,5,6\n", "t.csv", columns=["c", "a"])
    assert table.names == ["c", "a"]
    np.testing.assert_array_equal(table.series[0], [3, 6])


def test_long_format_makes_one_series_per_id_each_with_its_own_range():
    text = "store,date,sales\nA,2020-01-01,1\nB,2020-01-02,20\nA,2020-01-02,2\nA,2020-01-03,3\nB,2020-01-03,30\n"
    table = read_table(text, "long.csv", id_column="store")
    assert table.names == ["A", "B"]
    np.testing.assert_array_equal(table.series[0], [1, 2, 3])
    np.testing.assert_array_equal(table.series[1], [20, 30])
    np.testing.assert_array_equal(table.times[1], days("2020-01-02", "2020-01-03"))


def test_long_format_with_two_value_columns_names_id_and_column():
    text = "id,date,price,volume\nx,2020-01-01,1,10\nx,2020-01-02,2,20\ny,2020-01-01,3,30\ny,2020-01-02,4,40\n"
    table = read_table(text, "l.csv", id_column="id")
    assert table.names == ["x:price", "x:volume", "y:price", "y:volume"]
    np.testing.assert_array_equal(table.series[3], [30, 40])


def test_a_missing_value_is_refused_with_its_line_and_column():
    with pytest.raises(DataError) as e:
        read_table("date,a,b\n2020-01-01,1,2\n2020-01-02,3,NA\n2020-01-03,4,5\n", "gaps.csv")
    assert str(e.value) == (
        "gaps.csv, line 3: the value in column 'b' is missing; "
        "fill the gaps (`fill` previous, linear or zero) or remove the row"
    )


MISSING = "date,v\n2020-01-01,\n2020-01-02,2\n2020-01-03,null\n2020-01-04,nan\n2020-01-05,8\n2020-01-06,\n"


@pytest.mark.parametrize(
    "fill, expected",
    [
        ("previous", [2, 2, 2, 2, 8, 8]),  # the missing first value takes the first one there is
        ("linear", [2, 2, 4, 6, 8, 8]),  # the ends carry the nearest value
        ("zero", [0, 2, 0, 0, 8, 0]),
    ],
)
def test_each_fill_rule(fill, expected):
    table = read_table(MISSING, "m.csv", fill=fill)
    np.testing.assert_array_equal(table.series[0], expected)
    assert table.filled == 4


def test_an_unknown_fill_rule_lists_the_choices():
    with pytest.raises(UsageError, match="`fill` must be one of error, previous, linear, zero"):
        read_table(MISSING, "m.csv", fill="mean")


def test_a_column_with_no_value_at_all_cannot_be_filled():
    with pytest.raises(DataError, match="column 'b' for store 'B' has no values"):
        read_table("store,date,a,b\nA,2020-01,1,2\nB,2020-01,3,\n", "s.csv", id_column="store", fill="zero")


MONTHS_WITH_A_GAP = "month,v\n2020-03,3\n2020-04,4\n2020-07,7\n2020-08,8\n"


def test_a_month_without_a_row_is_refused_where_it_is():
    with pytest.raises(DataError) as e:
        read_table(MONTHS_WITH_A_GAP, "monthly.csv")
    assert str(e.value) == (
        "monthly.csv: no rows for 2020-05 to 2020-06 between line 3 and line 4 "
        "(the times step by 1 month); fill the gaps (`fill` previous, linear or zero) or add the rows"
    )


def test_a_month_without_a_row_is_inserted_and_filled():
    table = read_table(MONTHS_WITH_A_GAP, "monthly.csv", fill="linear")
    np.testing.assert_array_equal(table.series[0], [3, 4, 5, 6, 7, 8])
    assert [format_time(t, table.frequency) for t in table.times[0]] == [f"2020-0{m}" for m in range(3, 9)]
    assert table.filled == 2


def test_business_days_skip_weekends_without_a_gap():
    # Friday 2020-01-03 to Monday 2020-01-06: no Saturday row is missing from stock prices.
    table = read_table("date,close\n2020-01-02,1\n2020-01-03,2\n2020-01-06,3\n2020-01-07,4\n", "s.csv")
    assert len(table.series[0]) == 4 and table.frequency == Frequency("B", 1)
    assert str(table.frequency) == "1 business day"


def test_weekdays_that_span_no_weekend_are_plain_days():
    # Monday to Thursday: nothing says the weekend would be skipped.
    table = read_table("date,close\n2020-01-06,1\n2020-01-07,2\n2020-01-08,3\n2020-01-09,4\n", "s.csv")
    assert table.frequency == Frequency("D", 1)


def test_business_days_continue_from_friday_to_monday():
    np.testing.assert_array_equal(
        next_times(np.datetime64("2020-12-31"), Frequency("B", 1), 4),
        days("2021-01-01", "2021-01-04", "2021-01-05", "2021-01-06"),
    )
    np.testing.assert_array_equal(
        next_times(np.datetime64("2021-01-07T16:00"), Frequency("B", 2), 2),
        days("2021-01-11T16:00", "2021-01-13T16:00"),
    )


def test_a_bad_date_is_named_with_its_line():
    with pytest.raises(DataError, match=r"^data.csv, line 3: '2021-13-01' in column 'date' is not a date"):
        read_table("date,value\n2021-11-01,1\n2021-13-01,2\n2022-01-01,3\n", "data.csv")


def test_dates_seqgen_does_not_read_are_not_taken_for_no_time_at_all():
    with pytest.raises(DataError, match="column 'Date' holds times such as '03/01/2021', which seqgen does not read"):
        read_table("Date,value\n03/01/2021,1\n03/02/2021,2\n", "us.csv")


def test_an_unknown_column_name_lists_the_columns():
    with pytest.raises(DataError, match=r"t.csv has no column 'sale' \(`columns`\); its columns are 'date', 'sales'"):
        read_table("date,sales\n2020-01-01,1\n", "t.csv", columns=["sale"])
    with pytest.raises(DataError, match="no column 'day' \\(`time_column`\\)"):
        read_table("date,sales\n2020-01-01,1\n", "t.csv", time_column="day")
    with pytest.raises(UsageError, match="`columns` names 'sales' twice"):
        read_table("date,sales\n2020-01-01,1\n", "t.csv", columns=["sales", "sales"])


def test_a_cell_that_is_not_a_number_is_named():
    with pytest.raises(DataError, match=r"^t.csv, line 4: '1O' in column 'sales' is not a number"):
        read_table("date,sales\n2020-01-01,1\n2020-01-02,2\n2020-01-03,1O\n", "t.csv")


def test_a_table_without_numbers_says_so():
    with pytest.raises(DataError, match="has no column of numbers besides the time and id"):
        read_table("date,comment\n2020-01-01,fine\n2020-01-02,rain\n", "t.csv")


def test_semicolons_and_tabs_separate_cells():
    for sep in ";\t":
        table = read_table(f"date{sep}a{sep}b\n2020-01-01{sep}1{sep}2\n2020-01-02{sep}3{sep}4\n", "eu.csv")
        assert table.names == ["a", "b"]
        np.testing.assert_array_equal(table.series[1], [2, 4])


def test_quoted_cells_may_hold_the_delimiter():
    table = read_table('"Date","Sales, in EUR"\n"2020-01-01","1"\n"2020-01-02","2"\n', "q.csv")
    assert table.names == ["Sales, in EUR"] and table.time_column == "Date"


def test_thousands_separators_in_quoted_cells_are_read():
    table = read_table(
        'date,units,revenue\n2020-01-01,3,"1,234.5"\n2020-01-02,4,"987.25"\n2020-01-03,5,"-12,000"\n', "sales.csv"
    )
    assert table.names == ["units", "revenue"] and table.left_out == {}
    np.testing.assert_array_equal(table.series[1], [1234.5, 987.25, -12000])


def test_a_decimal_comma_is_read_in_a_semicolon_separated_export():
    table = read_table("Datum;Wert;Menge\n01.03.2021;1,5;1.234,5\n02.03.2021;-0,25;7\n03.03.2021;2;12,75\n", "de.csv")
    assert table.time_column == "Datum" and table.names == ["Wert", "Menge"]
    np.testing.assert_array_equal(table.series[0], [1.5, -0.25, 2])
    np.testing.assert_array_equal(table.series[1], [1234.5, 7, 12.75])


def test_columns_that_are_not_series_are_named_with_why():
    table = read_table("date,value,comment,t\n2020-01-01,1,fine,1\n2020-01-02,2,rain,2\n2020-01-03,3,,3\n", "t.csv")
    assert table.names == ["value"]
    assert table.left_out == {"comment": "it holds text such as 'fine'", "t": "it counts rows"}
    assert read_table(",date,value\n0,2020-01-01,1\n1,2020-01-02,2\n", "pandas.csv").left_out == {}  # its row numbers
    newest_first = read_table("date,value,t\n2020-01-03,3,3\n2020-01-02,2,2\n2020-01-01,1,1\n", "t.csv")
    assert newest_first.names == ["value"] and newest_first.left_out == {"t": "it counts rows"}
    assert read_table("date,value,comment\n2020-01-01,1,x\n", "t.csv", columns=["value"]).left_out == {}  # as asked


def test_newest_first_is_put_in_time_order():
    table = read_table("date,v\n2020-01-03,3\n2020-01-02,2\n2020-01-01,1\n", "new.csv")
    np.testing.assert_array_equal(table.series[0], [1, 2, 3])
    assert table.times[0][0] == np.datetime64("2020-01-01")


def test_a_time_given_twice_names_both_lines():
    with pytest.raises(DataError, match=r"^t.csv, line 4: the time '2020-01-01' in column 'date' repeats line 2"):
        read_table("date,v\n2020-01-01,1\n2020-01-02,2\n2020-01-01,3\n", "t.csv")


def test_a_year_column_is_a_time_only_under_a_time_name():
    assert read_table("Year,births\n1960,5\n1961,6\n", "y.csv").frequency == Frequency("Y", 1)
    table = read_table("code,births\n1960,5\n1961,6\n", "y.csv")
    assert table.time_column is None and table.names == ["code", "births"]


def test_no_time_column_keeps_the_file_order():
    table = read_table("a,b\n3,1\n1,2\n", "plain.csv")
    assert table.times is None and table.frequency is None
    np.testing.assert_array_equal(table.series[0], [3, 1])


@pytest.mark.parametrize(
    "times, frequency",
    [
        (["1959", "1960", "1961"], Frequency("Y", 1)),
        (["1959-01-01", "1959-04-01", "1959-07-01", "1959-10-01", "1960-01-01"], Frequency("M", 3)),
        (["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"], Frequency("M", 1)),
        (["2020-01-31", "2020-02-29", "2020-03-31"], Frequency("M", 1)),
        (["2020-02-27", "2020-02-28", "2020-02-29", "2020-03-01"], Frequency("D", 1)),
        (["2020-01-01", "2020-01-08", "2020-01-15"], Frequency("W", 1)),
        (["2020-01-01 22:00", "2020-01-01 23:00", "2020-01-02T00:00:00"], Frequency("h", 1)),
    ],
)
def test_the_step_between_times_is_inferred(times, frequency):
    text = "year,v\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times))
    assert read_table(text, "f.csv").frequency == frequency


def test_next_times_continue_by_calendar_months():
    monthly = Frequency("M", 1)
    np.testing.assert_array_equal(
        next_times(np.datetime64("2020-11-01"), monthly, 3), days("2020-12-01", "2021-01-01", "2021-02-01")
    )
    np.testing.assert_array_equal(
        next_times(np.datetime64("2021-01-31"), monthly, 3), days("2021-02-28", "2021-03-31", "2021-04-30")
    )
    # The end of a month stays at the end; any other day stays that day where the month has it.
    np.testing.assert_array_equal(next_times(np.datetime64("2020-04-30"), monthly, 2), days("2020-05-31", "2020-06-30"))
    np.testing.assert_array_equal(next_times(np.datetime64("2020-01-30"), monthly, 2), days("2020-02-29", "2020-03-30"))
    np.testing.assert_array_equal(
        next_times(np.datetime64("2020-01-01T12:00"), Frequency("h", 6), 2),
        days("2020-01-01T18:00", "2020-01-02T00:00"),
    )


@pytest.mark.parametrize(
    "text, frequency",
    [
        ("1960", Frequency("Y", 1)),
        ("1960-03", Frequency("M", 1)),
        ("1960-03-01", Frequency("D", 1)),
        ("1960-03-01 14:00", Frequency("h", 1)),
        ("1960-03-31", Frequency("M", 1)),
    ],
)
def test_format_time_prints_a_time_as_it_was_read(text, frequency):
    assert format_time(parse_time(text, years=True), frequency) == text


def test_dates_in_other_common_forms():
    assert parse_time("2020/03/01") == parse_time("01.03.2020") == np.datetime64("2020-03-01")
    assert parse_time("2020-03-01T14:05:09Z") == np.datetime64("2020-03-01T14:05:09")
    assert parse_time("2020-02-30") is None and parse_time("1960") is None and parse_time("12.5") is None


@pytest.mark.parametrize(
    "text, table",
    [
        ("date,value\n2020-01-01,1\n2020-01-02,2\n", True),
        ("a;b\n1;2\n3;4\n", True),
        ("value\n1\n2\n3\n", False),  # one column: the series reader's
        ("1\n2\n3\n", False),
        ("1,2\n3,4\n", False),  # no header
        ("Hello, world\nHow are you, my friend\n", False),
    ],
)
def test_looks_like_table(text, table):
    assert looks_like_table(text) is table


def test_irregular_times_are_taken_as_they_are():
    # Mostly one second apart, then five hours: an event log, not a series with 18,000 missing rows.
    table = read_table("time,v\n2020-01-01 00:00:00,1\n2020-01-01 00:00:01,2\n2020-01-01 05:00:03,3\n", "log.csv")
    assert table.frequency == Frequency("s", 1) and len(table.series[0]) == 3


def test_an_r_export_is_the_series_it_holds():
    # R writes a ts as a row number, then the time in decimal years, then the value.
    text = "rownames,time,value\n" + "".join(f"{i + 1},{1999 + i / 4},{10 + i}\n" for i in range(8))
    table = read_table(text, "r.csv")
    assert table.names == ["value"]
    assert str(table.frequency) == "3 months"
    assert [str(t)[:7] for t in table.times[0][:3]] == ["1999-01", "1999-04", "1999-07"]


def test_monthly_decimal_years_land_on_their_months():
    text = "time,sales\n" + "".join(f"{1949 + i / 12:.6f},{100 + i}\n" for i in range(14))
    table = read_table(text, "air.csv")
    assert str(table.frequency) == "1 month"
    assert str(table.times[0][13])[:7] == "1950-02"


@pytest.mark.parametrize(
    "quarters", [["2019 Q3", "2019 Q4", "2020 Q1"], ["2019Q3", "2019Q4", "2020Q1"], ["Q3 2019", "Q4 2019", "Q1 2020"]]
)
def test_quarters_as_tsibble_and_statistics_offices_write_them(quarters):
    table = read_table("quarter,gdp\n" + "".join(f"{q},{k}\n" for k, q in enumerate(quarters)), "gdp.csv")
    assert table.frequency == Frequency("M", 3)
    np.testing.assert_array_equal(table.times[0], days("2019-07-01", "2019-10-01", "2020-01-01"))


def test_months_by_name():
    assert [parse_time(c) for c in ("Jan 2020", "2020 Feb", "March-2020", "Sept 2020", "2020M11")] == list(
        days("2020-01-01", "2020-02-01", "2020-03-01", "2020-09-01", "2020-11-01")
    )
    assert parse_time("Janx 2020") is None and parse_time("2020 Q5") is None and parse_time("2020M13") is None
