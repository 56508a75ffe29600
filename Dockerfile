# The service in a container, for platforms that run an image (Fly, Render, Railway, Kubernetes).
# Build: docker build -t credits .   Run: docker run -e DATABASE_URL -e CRON_SECRET -p 8000:8000 credits
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app
# Production only: DATABASE_URL is always set here, so the embedded PostgreSQL stays out.
COPY requirements/production.txt requirements/
RUN pip install -r requirements/production.txt

COPY . .
RUN useradd --create-home --uid 10001 credits
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['PORT'], timeout=4)"]

# The Procfile's command: gunicorn.conf.py binds 0.0.0.0:$PORT.
CMD ["gunicorn", "wsgi:app", "--config", "gunicorn.conf.py"]
