"""The service as one Vercel Python Function: copy this file to api/index.py.

vercel.json sends every path here, so Flask sees /api/jobs/credits/grant and the rest as usual.
"""

import sys
from pathlib import Path

# The project root (where wsgi.py, credits/ and sql/ are), one folder up from api/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsgi import app  # noqa: E402, F401  (Vercel serves the WSGI app named `app`)
