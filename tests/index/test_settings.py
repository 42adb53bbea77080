"""StoreSettings refuses values the store or pgvector would fail on later, at construction."""

from __future__ import annotations

import pytest

from index import InvalidInput, StoreSettings


@pytest.mark.parametrize(
    "bad",
    [
        {"hnsw_m": 1},  # pgvector's bounds are 2..100
        {"hnsw_m": 101},
        {"ef_search": 0},
        {"ef_construction": 0},
        {"build_threads": -1},
        {"sqlite_synchronous": "FAST"},
    ],
)
def test_out_of_range_settings_are_refused_with_the_setting_named(bad):
    with pytest.raises(InvalidInput, match=next(iter(bad))):
        StoreSettings(**bad)


def test_bounds_of_hnsw_m_are_accepted():
    assert StoreSettings(hnsw_m=2).hnsw_m == 2 and StoreSettings(hnsw_m=100).hnsw_m == 100
