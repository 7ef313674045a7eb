"""kws_zoo.core.config: the one dict -> frozen dataclass parser checks keys, types and ranges, naming the field."""
from __future__ import annotations

import dataclasses

import pytest

from kws_zoo.core.config import from_dict, to_dict
from kws_zoo.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = 1.0
    name: str = "x"


@dataclasses.dataclass(frozen=True)
class Outer:
    count: int = 1
    enabled: bool = False
    pair: tuple[float, float] = (0.0, 1.0)
    words: tuple[str, ...] = ()
    inner: Inner = Inner()
    limit: int | None = None

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")


def test_round_trip_turns_lists_into_tuples_and_back():
    values = {"count": 3, "enabled": True, "pair": [0.5, 2], "words": ["a", "b"], "inner": {"rate": 2},
              "limit": 7}
    parsed = from_dict(Outer, values, "cfg")
    assert parsed == Outer(3, True, (0.5, 2.0), ("a", "b"), Inner(2.0), 7)
    assert isinstance(parsed.inner.rate, float)
    assert to_dict(parsed) == {**values, "pair": [0.5, 2.0], "inner": {"rate": 2.0, "name": "x"}}


@pytest.mark.parametrize("values, message", [
    ({"cuont": 2}, "cfg: unknown Outer keys ['cuont']"),
    ({"inner": {"rte": 1}}, "cfg.inner: unknown Inner keys ['rte']"),
    ({"count": "ten"}, "cfg.count: expected int, got str 'ten'"),
    ({"count": 2.5}, "cfg.count: expected int, got float 2.5"),
    ({"count": True}, "cfg.count: expected int, got bool True"),
    ({"enabled": 1}, "cfg.enabled: expected true or false, got int 1"),
    ({"pair": [1.0]}, "cfg.pair: expected 2 values, got 1"),
    ({"pair": "0,1"}, "cfg.pair: expected a list, got str '0,1'"),
    ({"words": "abc"}, "cfg.words: expected a list, got str 'abc'"),
    ({"words": ["a", 3]}, "cfg.words[1]: expected a string, got int 3"),
    ({"inner": 5}, "cfg.inner: expected an object, got int"),
    ({"inner": {"rate": "fast"}}, "cfg.inner.rate: expected a number, got str 'fast'"),
    ({"limit": "none"}, "cfg.limit: expected int, got str 'none'"),
    ({"count": 0}, "cfg: count must be >= 1, got 0"),  # the dataclass' own range check, named by place
])
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, values, "cfg")
    assert str(err.value).startswith(message)


def test_null_is_allowed_only_where_the_annotation_says_so():
    assert from_dict(Outer, {"limit": None}).limit is None
    with pytest.raises(ConfigError, match="count: expected int, got NoneType None"):
        from_dict(Outer, {"count": None})
