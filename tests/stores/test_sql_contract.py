"""SqlStore on SQLite, PostgreSQL and MariaDB passes the store contract."""

from __future__ import annotations

import pytest

from membermkt.stores.sql import SqlStore
from membermkt.testing.store_contract import StoreContract


class TestSqlContract(StoreContract):
    @pytest.fixture
    def store(self, sql_store: SqlStore) -> SqlStore:
        return sql_store
