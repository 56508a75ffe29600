"""What the deploy tests share that is not a fixture: paths, stand-in answers, file readers."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from shutil import which

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
HARNESS = Path(__file__).resolve().parent / "harness"
NODE = which("node")

INCOMPLETE = (200, {"success": True, "complete": False, "results": {}})
COMPLETE = (200, {"success": True, "complete": True, "results": {}})
ALREADY_RUNNING = (409, {"success": False, "error": "a grant run is already in progress"})
# An answer that never comes: the stand-in holds the request until it is closed.
NO_ANSWER = (None, None)


class Scripted:
    """A stand-in service that answers each call with the next scripted (status, body)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self.requests = []
        self.closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.calls.append((self.path, self.headers.get("Authorization")))
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, body = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                if status is None:
                    outer.closing.wait(60)
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def dockerfile():
    """The Dockerfile's instructions as (NAME, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [tuple(line.split(maxsplit=1)) for line in lines]


def package_name(line):
    """The normalized package name of a requirement line (`Jinja2==3.1.6`: `jinja2`)."""
    return re.split(r"[\[=<>~! ;]", line, maxsplit=1)[0].lower().replace("_", "-")


def requirements(path):
    """The package names a requirements file installs, following its `-r` includes."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= requirements((path.parent / line[3:].strip()).resolve())
        elif line:
            names.add(package_name(line))
    return names
