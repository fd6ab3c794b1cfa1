"""Database access: engine and sessions built from settings, never at import time."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from heimdall.errors import ConfigError
from heimdall.extras import require_database_driver
from heimdall.storage.migrate import engine_options, upgrade

__all__ = ["Database", "retry_disconnects", "RETRY_WINDOW_S", "SQLITE_BUSY_TIMEOUT_MS"]

log = logging.getLogger(__name__)

#: How long a state write keeps retrying while the database server is unreachable (s).
RETRY_WINDOW_S = 60.0
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 2.0

P = ParamSpec("P")
T = TypeVar("T")


#: How long a SQLite statement waits for another connection's write lock (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _configure_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001
    """Foreign keys on; write-ahead logging, so readers never wait for a writer (nor a
    writer for readers) and a long import does not lock the API's status pages out; a busy
    timeout for the writers, which still take turns."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class Database:
    """An engine plus a session factory for one database URL."""

    def __init__(self, url: str, retry_window_s: float = RETRY_WINDOW_S) -> None:
        self.url = url
        self.retry_window_s = retry_window_s
        require_database_driver(url, "HEIMDALL_DATABASE_URL")
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                # A busy timeout lets the CLI and a worker share the file.
                self.engine: Engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
                event.listen(self.engine, "connect", _configure_sqlite)
            else:
                self.engine = create_engine(url, pool_pre_ping=True, **engine_options(url))
        except (SQLAlchemyError, ValueError) as exc:
            raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        """Bring the database to the newest migration (creates every table when empty)."""
        try:
            upgrade(self.url)
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot reach or upgrade the database {self.safe_url}: {exc.__class__.__name__}") from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def retry_disconnects(function: Callable[Concatenate[Database, P], T]) -> Callable[Concatenate[Database, P], T]:
    """Retry `function(db, ...)` with exponential backoff while the database server is away.

    For a server database (PostgreSQL), connection-level errors (a restart, a dropped
    connection, refused connections) are retried for `db.retry_window_s`; then the error
    propagates. `function` must be one transaction that is safe to run again. SQLite has
    no server to lose (its busy timeout covers locks), so nothing is retried there.
    """

    @functools.wraps(function)
    def wrapper(db: Database, *args: P.args, **kwargs: P.kwargs) -> T:
        deadline = time.monotonic() + db.retry_window_s
        delay = _FIRST_DELAY_S
        while True:
            try:
                return function(db, *args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                if db.is_sqlite or time.monotonic() + delay > deadline:
                    raise
                # The driver's error type only: its message can carry the URL.
                log.warning(
                    "database %s unavailable in %s (%s); retrying in %.1f s",
                    db.safe_url, function.__name__, type(exc.orig).__name__, delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY_S)

    return wrapper
