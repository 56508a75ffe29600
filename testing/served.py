"""The service as deployed: gunicorn started with the Procfile's command on a free local port."""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The settings a launched service takes from its caller only, never from this environment.
SCRUB = ("DATABASE_URL", "CRON_SECRET")


@contextmanager
def in_a_thread(app) -> Iterator[str]:
    """The app answering HTTP on a free local port, in this process, as a platform or a browser
    would reach it; answers its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


class DidNotStart(RuntimeError):
    """gunicorn ended, or did not answer in time; the message holds its output."""


def free_port():
    """A local TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_command():
    """The Procfile's web command, with gunicorn taken from this environment."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    line = next(text for text in lines if text.startswith("web:"))
    args = shlex.split(line.removeprefix("web:"))
    return [str(BIN / args[0]), *args[1:]]


def call(port, path, secret=None, timeout=30):
    """(status, JSON body) of a GET on the local port; a failed connection raises OSError."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if secret:
        request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class Served:
    """gunicorn on loopback, stopped by its pid at the end; its output is kept in a file.

    env: the service's settings, on top of this environment less SCRUB (prefixes).
    command: the Procfile's by default, bound to the free port with `gunicorn_args` added;
    another command (an image's CMD) binds by itself, to `port`.
    """

    def __init__(self, env, cwd=ROOT, command=None, port=None, gunicorn_args="", scrub=SCRUB):
        self.port = port or free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(scrub)}, **env}
        if command is None:
            command = procfile_command()
            env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{self.port} {gunicorn_args}".strip()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )
        self.output = None

    def __enter__(self):
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait_ready(self, timeout=60):
        """Wait until a worker has loaded the app and answers (404 on /)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self.call("/")[0] == 404:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise DidNotStart(f"gunicorn did not start:\n{self.stop()}")

    def call(self, path, secret=None, timeout=30):
        """(status, JSON body) of a GET on the service."""
        return call(self.port, path, secret, timeout)

    def worker_pid(self):
        """The pid of the one worker."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        [pid] = children.read_text().split()
        return int(pid)

    def stop(self):
        """Stop gunicorn (SIGTERM, or a kill after a minute); answer all it wrote."""
        if self.output is not None:
            return self.output
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.seek(0)
        self.output = self.log.read()
        self.log.close()
        return self.output
