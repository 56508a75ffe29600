"""The gunicorn entry point: `gunicorn wsgi:app` (settings in gunicorn.conf.py)."""

from dotenv import load_dotenv

load_dotenv()

from app import create_app  # noqa: E402  (after .env is loaded)

app = create_app()
