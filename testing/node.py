"""Node.js for the suite's JavaScript and TypeScript folders: whether it is here, and each
folder's dependencies installed as its lockfile pins them."""

import shutil
import subprocess
from pathlib import Path

import pytest


def requires_node(what):
    """A module mark: skip, saying why, where Node.js or npm is not installed."""
    return pytest.mark.skipif(
        not (shutil.which("node") and shutil.which("npm")),
        reason=f"Node.js and npm are not installed: {what} cannot run here",
    )


def install_locked(folder: Path):
    """npm ci in folder: its dependencies exactly as its package-lock.json pins them."""
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        check=True,
        timeout=300,
    )
