"""Run parameters: encoding for storage, decoding, and checking against a workflow's signature."""

from __future__ import annotations

import enum
import json
import re
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from anachron.params import TYPE_KEY, check_params, decode_params, encode_params

UTC = timezone.utc
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
MINUS_3 = timezone(timedelta(hours=-3))


def roundtrip(params):
    return decode_params(encode_params(params))


def same(a, b) -> bool:
    """Equal, with the same types all the way down (and the same tzinfo offsets)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (datetime, time)):
        return a == b and a.tzinfo is None and b.tzinfo is None or (
            a.tzinfo is not None and b.tzinfo is not None and a.utcoffset() == b.utcoffset() and a == b)
    return a == b


# -- round trips --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 42, 2 ** 63, -(2 ** 100), 10 ** 300, 0.0, -0.5, 1e-300, 1.7976931348623157e308,
    "", "plain", "unicode: é ü 漢字 🎉", "quotes \" and \\ and \n newline", "\x00",
    [], [1, "a", None, 2.5], {}, {"a": 1}, {"": "empty key"}, {"é": "unicode key"},
    date(2024, 1, 1), date(1, 1, 1), date(9999, 12, 31),
    datetime(2024, 1, 1), datetime(2024, 1, 1, 6, 30, 15, 123456),
    datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 6, 30, 15, 7, tzinfo=PLUS_0530),
    datetime(2024, 7, 1, 23, 59, 59, tzinfo=MINUS_3),
    time(0, 0), time(6, 30, 15, 1), time(6, 30, tzinfo=UTC), time(23, 59, 59, 999999, tzinfo=PLUS_0530),
])
def test_every_accepted_type_round_trips(value):
    back = roundtrip({"v": value})
    assert same(back, {"v": value}), (value, back)


def test_nested_values_round_trip():
    params = {
        "cfg": {"tables": ["a", "b"], "window": {"start": date(2024, 1, 1), "end": datetime(2024, 2, 1, tzinfo=UTC)},
                "deep": [[[{"x": [time(1, 2), None, {"y": datetime(2024, 1, 1, 0, 0, 0, 5)}]}]]]},
        "days": [date(2024, 1, d) for d in range(1, 4)],
        "n": 3, "ratio": 0.25, "flag": True, "none": None, "name": "ada",
    }
    assert same(roundtrip(params), params)


def test_very_deep_nesting_round_trips():
    value: object = "leaf"
    for i in range(150):
        value = [value] if i % 2 else {"k": value}
    assert roundtrip({"v": value}) == {"v": value}


def test_date_and_datetime_stay_distinct():
    back = roundtrip({"d": date(2024, 1, 1), "dt": datetime(2024, 1, 1)})
    assert type(back["d"]) is date and type(back["dt"]) is datetime


def test_naive_stays_naive_and_aware_keeps_its_offset():
    back = roundtrip({"naive": datetime(2024, 1, 1, 12), "utc": datetime(2024, 1, 1, 12, tzinfo=UTC),
                      "ist": datetime(2024, 1, 1, 12, tzinfo=PLUS_0530), "t": time(8, tzinfo=MINUS_3)})
    assert back["naive"].tzinfo is None and back["naive"] == datetime(2024, 1, 1, 12)
    assert back["utc"].utcoffset() == timedelta(0)
    assert back["ist"].utcoffset() == timedelta(hours=5, minutes=30) and back["ist"].hour == 12
    assert back["t"].utcoffset() == timedelta(hours=-3) and back["t"].hour == 8


def test_aware_datetime_with_a_named_zone_keeps_instant_and_offset():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    value = datetime(2024, 7, 1, 9, 0, tzinfo=paris)
    back = roundtrip({"v": value})["v"]
    assert back == value and back.utcoffset() == timedelta(hours=2) and back.hour == 9


def test_encoding_does_not_modify_the_input():
    params = {"cfg": {"when": [date(2024, 1, 1)], "n": 1}}
    snapshot = {"cfg": {"when": [date(2024, 1, 1)], "n": 1}}
    encode_params(params)
    assert same(params, snapshot)


def test_any_mapping_is_accepted_at_the_top():
    from types import MappingProxyType

    assert roundtrip(MappingProxyType({"a": 1})) == {"a": 1}


# -- the stored text -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {}, {"x": 5}, {"fail_keys": ["2024-01-02"], "delay": 0.0, "flag": False, "none": None},
    {"cfg": {"a": [1, 2, {"b": "c"}]}, "unicode": "é漢🎉", "big": 2 ** 70},
])
def test_plain_values_are_stored_as_compact_json(params):
    text = encode_params(params)
    assert text == json.dumps(params, separators=(",", ":"))
    assert json.loads(text) == params


def test_dates_are_stored_as_tagged_readable_objects():
    text = encode_params({"day": date(2024, 1, 1), "at": datetime(2024, 1, 1, 6, tzinfo=UTC), "n": [time(1, 2, 3)]})
    assert json.loads(text) == {
        "day": {TYPE_KEY: "date", "value": "2024-01-01"},
        "at": {TYPE_KEY: "datetime", "value": "2024-01-01T06:00:00+00:00"},
        "n": [{TYPE_KEY: "time", "value": "01:02:03"}],
    }


def test_decode_none_is_empty():
    assert decode_params(None) == {}


def test_decode_reads_plain_json_written_by_older_versions():
    assert decode_params('{"x":5,"when":"2024-01-01 00:00:00"}') == {"x": 5, "when": "2024-01-01 00:00:00"}


def test_a_string_that_mentions_the_reserved_key_is_just_a_string():
    params = {"s": f'"{TYPE_KEY}"', "t": TYPE_KEY, "d": {"value": TYPE_KEY}}
    assert same(roundtrip(params), params)


@pytest.mark.parametrize("text", ["[1, 2]", '"x"', "3", "null"])
def test_decode_refuses_non_objects(text):
    with pytest.raises(ValueError, match="JSON object"):
        decode_params(text)


@pytest.mark.parametrize("text", [
    f'{{"v":{{"{TYPE_KEY}":"decimal","value":"1.5"}}}}',
    f'{{"v":{{"{TYPE_KEY}":"date","value":"2024-01-01","extra":1}}}}',
    f'{{"v":{{"{TYPE_KEY}":"date","value":20240101}}}}',
    f'{{"v":[{{"{TYPE_KEY}":"datetime","value":"yesterday"}}]}}',
])
def test_decode_refuses_unknown_or_malformed_tags(text):
    with pytest.raises(ValueError, match=re.escape(TYPE_KEY)):
        decode_params(text)


# -- refusals --------------------------------------------------------------------------------------------------

class Foo:
    pass


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class Name(str):
    pass


@pytest.mark.parametrize("params, message", [
    ({"when": {1, 2}}, "params['when']: a set cannot be stored; use a list"),
    ({"when": frozenset()}, "params['when']: a frozenset cannot be stored; use a list"),
    ({"pair": (1, 2)}, "params['pair']: a tuple cannot be stored (it would come back as a list); use a list"),
    ({"cfg": {"keys": [1, 2, Foo()]}}, "params['cfg']['keys'][2]: object of type Foo cannot be stored (accepted: "),
    ({"raw": b"abc"}, "params['raw']: bytes cannot be stored"),
    ({"raw": bytearray(b"abc")}, "params['raw']: bytearray cannot be stored"),
    ({"price": Decimal("1.10")}, "params['price']: a Decimal cannot be stored"),
    ({"lag": timedelta(days=1)}, "params['lag']: a timedelta cannot be stored"),
    ({"x": float("nan")}, "params['x']: float nan cannot be stored"),
    ({"x": [0.0, float("inf")]}, "params['x'][1]: float inf cannot be stored"),
    ({"x": {"y": -float("inf")}}, "params['x']['y']: float -inf cannot be stored"),
    ({"x": 10 ** 5000}, "params['x']: an int with more than 4300 digits cannot be stored"),
    ({"cfg": {1: "a"}}, "params['cfg']: dict key 1 (int) cannot be stored; dict keys must be str"),
    ({"cfg": {("a", "b"): 1}}, "params['cfg']: dict key ('a', 'b') (tuple) cannot be stored"),
    ({7: "x"}, "params: dict key 7 (int) cannot be stored"),
    ({"color": Color.RED}, "params['color']: object of type Color cannot be stored (accepted: "),
    ({"level": Level.LOW}, "params['level']: object of type Level (a subclass of int) cannot be stored: it would "
                           "come back as a plain int"),
    ({"name": Name("x")}, "params['name']: object of type Name (a subclass of str)"),
    ({"cfg": OrderedDict(a=1)}, "params['cfg']: object of type OrderedDict (a subclass of dict)"),
    ({"f": len}, "params['f']: object of type builtin_function_or_method cannot be stored"),
    ({"it": iter([1])}, "params['it']: object of type list_iterator cannot be stored"),
])
def test_unstorable_values_are_refused_naming_the_path(params, message):
    with pytest.raises(ValueError) as info:
        encode_params(params)
    assert str(info.value).startswith(message), str(info.value)


def test_the_message_lists_the_accepted_types():
    with pytest.raises(ValueError, match=r"accepted: None, bool, int, float, str, list, dict with str keys, "
                                         r"datetime\.date, datetime\.datetime, datetime\.time\)"):
        encode_params({"x": object()})


def test_subclasses_of_date_types_are_refused():
    class Stamp(datetime):
        pass

    with pytest.raises(ValueError, match=r"params\['at'\]: object of type Stamp \(a subclass of datetime\.datetime\)"):
        encode_params({"at": Stamp(2024, 1, 1)})


def test_a_tzinfo_without_a_fixed_offset_is_refused():
    class Floating(timezone.__base__):  # a tzinfo that never knows its offset
        def utcoffset(self, dt):
            return None

    with pytest.raises(ValueError, match=r"params\['at'\]: a datetime whose tzinfo .* gives no UTC offset"):
        encode_params({"at": datetime(2024, 1, 1, tzinfo=Floating())})


def test_the_field_name_is_used_in_messages():
    with pytest.raises(ValueError, match=r"^config\['etl'\]\['x'\]: a set"):
        encode_params({"x": set()}, field="config['etl']")


def test_the_reserved_key_is_refused_at_any_level():
    for params, path in [({TYPE_KEY: "date", "value": "2024-01-01"}, "params"),
                         ({"cfg": {TYPE_KEY: "x"}}, "params['cfg']"),
                         ({"cfg": [{"ok": 1}, {TYPE_KEY: "date", "value": "2024-01-01"}]}, "params['cfg'][1]")]:
        with pytest.raises(ValueError) as info:
            encode_params(params)
        assert str(info.value) == f"{path}: the dict key {TYPE_KEY!r} is reserved by anachron"


def test_circular_references_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"^params\['x'\](\[0\])+: lists and dicts nest deeper than"):
        encode_params({"x": loop})


def test_a_non_mapping_is_refused():
    with pytest.raises(ValueError, match="params: expected a mapping"):
        encode_params([("a", 1)])  # type: ignore[arg-type]


# -- check_params ------------------------------------------------------------------------------------------------

def etl(source, target="warehouse", *, day, limit=10):
    pass


def test_check_accepts_complete_params():
    check_params(etl, {"source": "s3", "day": date(2024, 1, 1)}, workflow="etl")
    check_params(etl, {"source": "s3", "day": "x", "target": "t", "limit": 3}, workflow="etl")


def test_check_refuses_unknown_names_with_the_existing_wording():
    with pytest.raises(ValueError) as info:
        check_params(etl, {"source": "s3", "day": 1, "nope": 1}, workflow="etl")
    assert str(info.value) == "params: workflow 'etl' has no parameter 'nope'"


def test_check_uses_the_field_name():
    with pytest.raises(ValueError) as info:
        check_params(etl, {"nope": 1}, workflow="etl", field="config['etl']", require_all=False)
    assert str(info.value) == "config['etl']: workflow 'etl' has no parameter 'nope'"


def test_check_refuses_a_missing_required_parameter():
    with pytest.raises(ValueError) as info:
        check_params(etl, {"day": 1}, workflow="etl")
    assert str(info.value) == "params: workflow 'etl' needs parameter 'source' (it has no default)"


def test_check_names_every_missing_parameter():
    with pytest.raises(ValueError) as info:
        check_params(etl, {}, workflow="etl")
    assert str(info.value) == "params: workflow 'etl' needs parameters 'source', 'day' (they have no default)"


def test_check_without_require_all_accepts_a_partial_layer():
    check_params(etl, {"limit": 5}, workflow="etl", require_all=False)
    check_params(etl, {}, workflow="etl", require_all=False)


def test_check_accepts_any_name_with_var_keyword():
    def flexible(a, **options):
        pass

    check_params(flexible, {"a": 1, "anything": 2, "else": [3]}, workflow="flexible")
    with pytest.raises(ValueError, match="needs parameter 'a'"):
        check_params(flexible, {"anything": 2}, workflow="flexible")


def test_check_ignores_var_positional_and_refuses_its_name():
    def gather(*items, n=1):
        pass

    check_params(gather, {}, workflow="gather")
    with pytest.raises(ValueError, match="has no parameter 'items'"):
        check_params(gather, {"items": [1]}, workflow="gather")


def test_check_refuses_a_positional_only_parameter_without_default():
    def odd(a, /, b=1):
        pass

    for params, require_all in [({}, True), ({"b": 2}, False)]:
        with pytest.raises(ValueError) as info:
            check_params(odd, params, workflow="odd", require_all=require_all)
        assert str(info.value).startswith("params: workflow 'odd' cannot be run: its parameter 'a' is "
                                          "positional-only without a default")


def test_check_refuses_positional_only_names_even_with_defaults():
    def odd(a=1, /, **rest):
        pass

    check_params(odd, {"other": 1}, workflow="odd")
    with pytest.raises(ValueError) as info:  # fn(a=2) would silently go to **rest
        check_params(odd, {"a": 2}, workflow="odd")
    assert str(info.value) == "params: parameter 'a' of workflow 'odd' is positional-only and cannot be passed by name"


def test_check_refuses_unstorable_values_with_the_encoder_message():
    def wf(when=None):
        pass

    params = {"when": {"days": [date(2024, 1, 1), {1, 2}]}}
    with pytest.raises(ValueError) as checked:
        check_params(wf, params, workflow="wf")
    with pytest.raises(ValueError) as encoded:
        encode_params(params)
    assert str(checked.value) == str(encoded.value) == "params['when']['days'][1]: a set cannot be stored; use a list"


def test_check_follows_wrapped_functions_and_odd_callables():
    import functools

    def inner(x, y=2):
        pass

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        return inner(*args, **kwargs)

    with pytest.raises(ValueError, match="has no parameter 'z'"):
        check_params(wrapper, {"x": 1, "z": 3}, workflow="wrapper")
    check_params(functools.partial(inner, 1), {"y": 3}, workflow="partial")

    class Callable_:
        __slots__ = ()

        def __call__(self, k):
            pass

    with pytest.raises(ValueError, match="needs parameter 'k'"):
        check_params(Callable_(), {}, workflow="callable")


def test_check_sees_a_function_redefined_under_the_same_name():
    def f(a):
        pass

    check_params(f, {"a": 1}, workflow="f")

    def f(b):  # noqa: F811 - a different function object: its own signature, not a cached one
        pass

    with pytest.raises(ValueError, match="has no parameter 'a'"):
        check_params(f, {"a": 1}, workflow="f")
