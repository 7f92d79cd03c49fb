"""The webmail's store queries run on both backends, like the store contract suite."""

from tests.store.conftest import make_store, pg_url, pytest_generate_tests, store

__all__ = ["make_store", "pg_url", "pytest_generate_tests", "store"]
