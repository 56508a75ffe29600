"""The job routes and the health checks, with the errors they answer, as one Blueprint.

The app factory (app.py) registers it and keeps what the routes use, the settings, the pool
and the accepted secrets, in app.extensions["credits"]. Every error is answered as JSON.
"""

import json
import logging
import uuid
from typing import TypedDict

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from credits import db, delivery_runs, events, jobs, monitor
from credits.config import Settings
from credits.jobs import body, params
from credits.web import auth

logger = logging.getLogger("credits")

JOB_ROUTES = "/api/jobs/"

blueprint = Blueprint("credits", __name__)


class Service(TypedDict):
    """What the app factory keeps in app.extensions["credits"] for the routes."""

    settings: Settings
    pool: db.Pool
    secrets: tuple[str, ...]


def _service() -> Service:
    """The settings, the pool and the accepted secrets the app factory kept."""
    service: Service = current_app.extensions["credits"]
    return service


@blueprint.before_app_request
def admit() -> ResponseReturnValue | None:
    """Refuse a body too long, a HEAD on a job route, and a job call without the secret."""
    if (request.content_length or 0) > auth.MAX_BODY_BYTES:
        raise RequestEntityTooLarge()  # refused on its length, before a byte is read
    if request.path.startswith(JOB_ROUTES):
        if request.method == "HEAD" and request.url_rule is not None:
            # Flask answers HEAD on GET routes by running them: a HEAD must run no job.
            allowed = (request.url_rule.methods or set()) - {"HEAD", "OPTIONS"}
            raise MethodNotAllowed(valid_methods=sorted(allowed))
        service = _service()
        if not (auth.authorized(service["secrets"]) or auth.signed_by_qstash(service["settings"])):
            return jsonify(error="Unauthorized"), 401
    g.job_id = uuid.uuid4()
    return None


@blueprint.route("/api/jobs/credits/grant", methods=["GET", "POST"])
def grant() -> ResponseReturnValue:
    """Run the grant for the asked date (default today), or count it with dryRun=true."""
    args = _job_args({"date", "dryRun", "budget"})
    service = _service()
    settings, pool = service["settings"], service["pool"]
    run = jobs.grant(
        pool,
        settings,
        params.parse_run_date(args.get("date"), lambda: db.today(pool)),
        jobs.GrantOptions(
            job_id=g.job_id,
            dry_run=_flag(args, "dryRun"),
            budget=params.parse_budget(args.get("budget"), settings),
        ),
    )
    _deliver_after(run)
    return jsonify(body.run_body(run))


@blueprint.route("/api/jobs/credits/expire", methods=["GET", "POST"])
def expire() -> ResponseReturnValue:
    """Run the expire up to now."""
    args = _job_args({"budget"})
    service = _service()
    budget = params.parse_budget(args.get("budget"), service["settings"])
    options = jobs.ExpireOptions(job_id=g.job_id, budget=budget)
    run = jobs.expire(service["pool"], service["settings"], options)
    _deliver_after(run)
    return jsonify(body.run_body(run))


@blueprint.route("/api/jobs/credits/deliver", methods=["GET", "POST"])
def deliver() -> ResponseReturnValue:
    """Post the due events to the webhook receiver, within the budget, as a run of job deliver."""
    args = _job_args({"budget"})
    service = _service()
    budget = params.parse_budget(args.get("budget"), service["settings"])
    done = delivery_runs.deliver(service["pool"], service["settings"], budget, g.job_id)
    return jsonify({**done.body(), "jobId": str(g.job_id)})


def _deliver_after(run: jobs.JobRun) -> None:
    """Post the events due with what is left of a job call's budget, when a receiver is set.

    Part of the job's call, not a run of its own: its counts are in the log (docs/EVENTS.md)."""
    settings = _service()["settings"]
    left = params.parse_budget(request.args.get("budget"), settings) - run.duration_ms / 1000
    if settings.webhook_url is None or run.dry_run or left < 1:
        return
    try:
        events.deliver(_service()["pool"], settings, left)
    except db.DatabaseUnavailable:
        # The run is done and said so; its events wait for the next call.
        logger.warning("Events not delivered after run %s: database unavailable", run.job_id)


@blueprint.route("/api/jobs/credits/status")
def status() -> ResponseReturnValue:
    """Whether both jobs succeeded lately; 503 when not."""
    _job_args(set())
    service = _service()
    body, healthy = monitor.job_status(service["pool"], service["settings"])
    return jsonify(body), 200 if healthy else 503


@blueprint.route("/healthz")
def healthz() -> ResponseReturnValue:
    """Whether the service reaches its database; 503 when not."""
    body, healthy = monitor.health(_service()["pool"])
    return jsonify(body), 200 if healthy else 503


@blueprint.app_errorhandler(params.InvalidParameter)
def invalid_parameter(exc: params.InvalidParameter) -> ResponseReturnValue:
    """400: a parameter the route cannot take; nothing ran."""
    return jsonify(success=False, error=str(exc)), 400


@blueprint.app_errorhandler(jobs.JobAlreadyRunning)
def job_already_running(exc: jobs.JobAlreadyRunning) -> ResponseReturnValue:
    """409: the same job runs already."""
    return jsonify(success=False, jobId=str(g.job_id), error=str(exc)), 409


@blueprint.app_errorhandler(db.DatabaseUnavailable)
def database_unavailable(exc: db.DatabaseUnavailable) -> ResponseReturnValue:
    """503: the database does not answer."""
    return jsonify(success=False, jobId=str(g.job_id), error="database unavailable"), 503


@blueprint.app_errorhandler(db.SchemaMissing)
def schema_missing(exc: db.SchemaMissing) -> ResponseReturnValue:
    """503, as an outage: it ends when the schema's owner applies it."""
    logger.error("%s", exc)
    return jsonify(success=False, jobId=str(g.job_id), error="database unavailable"), 503


@blueprint.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    """werkzeug's answer (its status and headers, such as Allow on a 405) with a JSON body."""
    response = exc.get_response()
    response.data = json.dumps({"error": exc.name})
    response.content_type = "application/json"
    return response


@blueprint.app_errorhandler(Exception)
def internal_error(exc: Exception) -> ResponseReturnValue:
    """500 for anything else; its reason goes to the log, not the body."""
    logger.exception("Unhandled error on %s %s", request.method, request.path)
    return jsonify(success=False, jobId=str(g.get("job_id", "")), error="internal error"), 500


def _job_args(allowed: set[str]) -> MultiDict[str, str]:
    """The query parameters, refusing any the route does not take (a typo must not run a job)."""
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise params.InvalidParameter(
            f"unknown parameter(s) {', '.join(unknown)}; this route takes "
            f"{', '.join(sorted(allowed)) or 'none'}"
        )
    repeated = sorted(name for name in request.args if len(request.args.getlist(name)) > 1)
    if repeated:
        raise params.InvalidParameter(f"parameter(s) given more than once: {', '.join(repeated)}")
    return request.args


def _flag(args: MultiDict[str, str], name: str) -> bool:
    """A true/false query parameter; absent means false."""
    value = args.get(name, "false")
    if value not in ("true", "false"):
        raise params.InvalidParameter(f"{name} must be true or false, got {value!r}")
    return value == "true"
