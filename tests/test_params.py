"""The ``k=v,k=v`` params string: what parses, what is refused and how the error names the item."""

import pytest

from app.ops.params import ParamsError, format_params, parse_params


@pytest.mark.parametrize("raw", [None, "", "   ", "\n\t "])
def test_missing_or_blank_params_parse_to_an_empty_dict(raw):
    assert parse_params(raw) == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("provider=aws", {"provider": "aws"}),
        ("provider=aws,size=2", {"provider": "aws", "size": "2"}),
        ("provider=,size=2", {"provider": "", "size": "2"}),
        ("provider=", {"provider": ""}),
        ("token=a=b==", {"token": "a=b=="}),
        ("url=https://h/?x=1&y=2,size=2", {"url": "https://h/?x=1&y=2", "size": "2"}),
        (" provider = aws , size = 2 ", {"provider": "aws", "size": "2"}),
        ("\tprovider=aws,\nsize=2\n", {"provider": "aws", "size": "2"}),
        ("name=hello world", {"name": "hello world"}),
        ("a.b-c_d=1,_x=2,X9=3", {"a.b-c_d": "1", "_x": "2", "X9": "3"}),
        ("k" * 64 + "=1", {"k" * 64: "1"}),
    ],
)
def test_valid_params_parse_into_a_dict_of_strings(raw, expected):
    assert parse_params(raw) == expected


def test_parsed_params_keep_the_order_of_the_string():
    assert list(parse_params("z=1,a=2,m=3")) == ["z", "a", "m"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a=1,,b=2", "item 2 is empty"),
        ("a=1, ,b=2", "item 2 is empty"),
        ("a=1,", "item 2 is empty"),
        ("a=1,b=2,", "item 3 is empty"),
        (",a=1", "item 1 is empty"),
        (",", "item 1 is empty"),
        ("a=1,b", "item 2 'b' is not of the form key=value"),
        ("provider", "item 1 'provider' is not of the form key=value"),
        ("a=1, b c ", "item 2 'b c' is not of the form key=value"),
        ("=1", "item 1 has an invalid key ''"),
        ("a=1, =2", "item 2 has an invalid key ''"),
        ("1a=x", "item 1 has an invalid key '1a'"),
        ("a b=1", "item 1 has an invalid key 'a b'"),
        ("-a=1", "item 1 has an invalid key '-a'"),
        ("a/b=1", "item 1 has an invalid key 'a/b'"),
        ("k" * 65 + "=1", "item 1 has an invalid key"),
        ("a=1,a=2", "key 'a' is given twice"),
        (" a=1, a =2", "key 'a' is given twice"),
        ("a=1,b=2,a=", "key 'a' is given twice"),
    ],
)
def test_malformed_params_raise_an_error_naming_the_item(raw, message):
    with pytest.raises(ParamsError) as excinfo:
        parse_params(raw)
    assert message in str(excinfo.value)


@pytest.mark.parametrize("raw", [5, 1.5, True, b"a=1", ["a=1"], {"a": "1"}])
def test_params_that_are_not_a_string_are_refused(raw):
    with pytest.raises(ParamsError, match="must be a string of k=v pairs"):
        parse_params(raw)


def test_params_error_is_a_value_error():
    assert issubclass(ParamsError, ValueError)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ""),
        ({"provider": "aws"}, "provider=aws"),
        ({"provider": "aws", "size": "2"}, "provider=aws,size=2"),
        ({"provider": "", "size": "2"}, "provider=,size=2"),
        ({"token": "a=b=="}, "token=a=b=="),
    ],
)
def test_format_params_renders_k_v_pairs_in_order(params, expected):
    assert format_params(params) == expected


@pytest.mark.parametrize(
    "raw",
    ["provider=aws,size=2", "provider=,size=2", "token=a=b==", "a.b-c_d=1,_x=2", " a = 1 , b = x y "],
)
def test_formatted_params_parse_back_to_the_same_dict(raw):
    params = parse_params(raw)
    assert parse_params(format_params(params)) == params
