"""The front door: the app factory, the bearer check, the job routes and the health checks."""

import hmac
import json
import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

import credits
from credits import config, db, jobs, monitor, signatures

logger = logging.getLogger("credits")

JOB_ROUTES = "/api/jobs/"
# The largest request body read (QStash's, to check its signature); a longer one gets 413.
MAX_BODY_BYTES = 64 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the service: settings from the environment, then test overrides."""
    settings = config.Settings.from_mapping({**os.environ, **(test_config or {})})
    credits.configure_logging(settings.log_format)
    secrets = config.cron_secrets(settings)  # before anything else: no secret, no service
    if settings.embedded and settings.cron_secret is None:
        logger.info(
            "No CRON_SECRET set: using the local secret in %s. Try:\n"
            '  curl -H "Authorization: Bearer $(cat %s)" '
            "http://127.0.0.1:8000/api/jobs/credits/grant",
            settings.local_secret_file,
            settings.local_secret_file,
        )
    expected_headers = tuple(f"Bearer {secret}".encode() for secret in secrets)
    pool = db.open_pool(settings)  # never waits for the database: a 503 until it answers

    app = Flask(__name__)
    # Keep the documented order of the response fields.
    cast(DefaultJSONProvider, app.json).sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # a chunked body too, as it is read
    app.extensions["credits"] = {"settings": settings, "pool": pool}

    @app.before_request
    def require_cron_secret() -> ResponseReturnValue | None:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise RequestEntityTooLarge()  # refused on its length, before a byte is read
        if request.path.startswith(JOB_ROUTES):
            if request.method == "HEAD" and request.url_rule is not None:
                # Flask answers HEAD on GET routes by running them: a HEAD must run no job.
                allowed = (request.url_rule.methods or set()) - {"HEAD", "OPTIONS"}
                raise MethodNotAllowed(valid_methods=sorted(allowed))
            if not (_authorized(expected_headers) or _signed_by_qstash(settings)):
                return jsonify(error="Unauthorized"), 401
        g.job_id = uuid.uuid4()
        return None

    @app.route("/api/jobs/credits/grant", methods=["GET", "POST"])
    def grant() -> ResponseReturnValue:
        args = _job_args({"date", "dryRun", "budget"})
        run = jobs.grant(
            pool,
            settings,
            run_date=jobs.parse_run_date(args.get("date")),
            job_id=g.job_id,
            dry_run=_flag(args, "dryRun"),
            budget=jobs.parse_budget(args.get("budget"), settings),
        )
        return jsonify(run.response())

    @app.route("/api/jobs/credits/expire", methods=["GET", "POST"])
    def expire() -> ResponseReturnValue:
        args = _job_args({"budget"})
        budget = jobs.parse_budget(args.get("budget"), settings)
        return jsonify(jobs.expire(pool, settings, job_id=g.job_id, budget=budget).response())

    @app.route("/api/jobs/credits/status")
    def status() -> ResponseReturnValue:
        _job_args(set())
        body, healthy = monitor.job_status(pool, settings)
        return jsonify(body), 200 if healthy else 503

    @app.route("/healthz")
    def healthz() -> ResponseReturnValue:
        body, healthy = monitor.health(pool)
        return jsonify(body), 200 if healthy else 503

    @app.errorhandler(jobs.InvalidParameter)
    def invalid_parameter(exc: jobs.InvalidParameter) -> ResponseReturnValue:
        return jsonify(success=False, error=str(exc)), 400

    @app.errorhandler(jobs.JobAlreadyRunning)
    def job_already_running(exc: jobs.JobAlreadyRunning) -> ResponseReturnValue:
        return jsonify(success=False, jobId=str(g.job_id), error=str(exc)), 409

    @app.errorhandler(db.DatabaseUnavailable)
    def database_unavailable(exc: db.DatabaseUnavailable) -> ResponseReturnValue:
        return jsonify(success=False, jobId=str(g.job_id), error="database unavailable"), 503

    @app.errorhandler(db.SchemaMissing)
    def schema_missing(exc: db.SchemaMissing) -> ResponseReturnValue:
        logger.error("%s", exc)  # answered as an outage: it ends when the owner applies it
        return jsonify(success=False, jobId=str(g.job_id), error="database unavailable"), 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        response = exc.get_response()  # keeps headers such as Allow on a 405
        response.data = json.dumps({"error": exc.name})
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> ResponseReturnValue:
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return jsonify(success=False, jobId=str(g.get("job_id", "")), error="internal error"), 500

    return app


def _authorized(expected_headers: tuple[bytes, ...]) -> bool:
    """True when the Authorization header is exactly `Bearer <secret>` for an accepted secret.

    Each accepted header is compared in constant time, all of them every time, so the answer
    takes as long whichever secret matched, or none.
    """
    header = request.headers.get("Authorization", "")
    try:
        received = header.encode("latin-1")  # the bytes on the wire, as WSGI decoded them
    except UnicodeEncodeError:
        return False
    matches = [hmac.compare_digest(received, expected) for expected in expected_headers]
    return any(matches)


def _signed_by_qstash(settings: config.Settings) -> bool:
    """True when QStash signed this very request: its URL (path and query), then its body.

    The token is checked first; the body of a request without a valid one is never read.
    """
    signature = request.headers.get("Upstash-Signature")
    if not settings.qstash_enabled or not signature:
        return False
    assert settings.public_url is not None  # the settings refuse QStash keys without it
    # The URL QStash called: the public URL, then the path and the query string as sent.
    query = request.query_string.decode("latin-1")
    url = settings.public_url + quote(request.path) + (f"?{query}" if query else "")
    claims = signatures.verified_claims(settings, signature, url)
    return claims is not None and signatures.body_matches(claims, _bounded_body())


def _bounded_body() -> bytes:
    """The request body, read only up to MAX_BODY_BYTES; a longer one gets 413.

    A body of declared length was checked before; a chunked one is cut off at the limit by
    werkzeug's stream, which raises 413 when read past it.
    """
    body = request.stream.read(MAX_BODY_BYTES)
    if request.stream.read(1):
        raise RequestEntityTooLarge()
    return body


def _job_args(allowed: set[str]) -> MultiDict[str, str]:
    """The query parameters, refusing any the route does not take (a typo must not run a job)."""
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise jobs.InvalidParameter(
            f"unknown parameter(s) {', '.join(unknown)}; this route takes "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise jobs.InvalidParameter(f"parameter(s) given more than once: {', '.join(repeated)}")
    return request.args


def _flag(args: MultiDict[str, str], name: str) -> bool:
    """A true/false query parameter; absent means false."""
    value = args.get(name, "false")
    if value not in ("true", "false"):
        raise jobs.InvalidParameter(f"{name} must be true or false, got {value!r}")
    return value == "true"
