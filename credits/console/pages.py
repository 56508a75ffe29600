"""The console's pages (Overview, Runs, Users, Finance, Audit) and its action forms."""

import uuid
from datetime import datetime, timezone
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from credits import ledger, monitor
from credits.config import Settings
from credits.console import actions, reports, run_records
from credits.console.auth import blueprint, operator_required, pool

RUNS_PAGE = 50
STATEMENT_PAGE = 25
AUDIT_PAGE = 50


def _settings() -> Settings:
    """The service's settings, kept by the app factory."""
    settings: Settings = current_app.extensions["credits"]["settings"]
    return settings


@blueprint.app_template_filter("credits")
def credits_filter(value: int | None) -> str:
    """A number of credits with thousands separators; a dash for none."""
    return "—" if value is None else f"{value:,}"


@blueprint.app_template_filter("when")
def when_filter(value: datetime | str | None) -> str:
    """A moment in UTC, to the second; a dash for none."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.route("/")
def overview() -> ResponseReturnValue:
    """Each job's health and last runs, and the ledger's last 90 days in charts."""
    status, healthy = monitor.job_status(pool(), _settings())
    days = reports.ledger_by_day(pool())
    return render_template(
        "console/overview.html",
        status=status,
        healthy=healthy,
        runs=[monitor.run_summary(row) for row in monitor.recent_runs(pool(), limit=10)],
        flows=reports.flow_chart(days, "day"),
        outstanding=reports.outstanding_chart(days, "day"),
        durations=reports.durations_chart(pool()),
        days=reports.CHART_DAYS,
    )


@blueprint.route("/runs")
def runs() -> ResponseReturnValue:
    """Every run, newest first, filtered by job and status, a page at a time."""
    job = request.args.get("job") or None
    status = request.args.get("status") or None
    if job not in (None, *monitor.JOBS) or status not in (None, *reports.RUN_STATUSES):
        abort(400, "Unknown job or status.")
    before = _run_cursor(request.args.get("before"))
    rows = reports.job_runs(pool(), job, status, before, RUNS_PAGE)
    cursor = None
    if len(rows) == RUNS_PAGE:
        cursor = f"{rows[-1]['started_at'].isoformat()}|{rows[-1]['id']}"
    return render_template(
        "console/runs.html",
        runs=[monitor.run_summary(row) for row in rows],
        job=job,
        status=status,
        jobs=monitor.JOBS,
        statuses=reports.RUN_STATUSES,
        cursor=cursor,
        paged=before is not None,
    )


@blueprint.route("/runs/<uuid:run_id>")
def run(run_id: uuid.UUID) -> ResponseReturnValue:
    """One run: its results and error, and the subscriptions it could not grant, with why."""
    found = run_records.job_run(pool(), run_id)
    if found is None:
        abort(404, "No run has this id.")
    return render_template(
        "console/run.html",
        run=monitor.run_summary(found),
        failures=run_records.failures(pool(), run_id),
    )


def _run_cursor(text: str | None) -> tuple[datetime, uuid.UUID] | None:
    """The Runs page's cursor: the last run's start and id."""
    if not text:
        return None
    try:
        started_at, run_id = text.split("|")
        return datetime.fromisoformat(started_at), uuid.UUID(run_id)
    except ValueError:
        abort(400, "Malformed page cursor.")


@blueprint.route("/users")
def users() -> ResponseReturnValue:
    """Find users by the start of their id."""
    prefix = request.args.get("q", "").strip()
    found = reports.find_users(pool(), prefix) if prefix else []
    return render_template("console/users.html", prefix=prefix, found=found)


@blueprint.route("/users/<path:user_id>")
def user(user_id: str) -> ResponseReturnValue:
    """One user's account, batches and statement (a page at a time, newest first)."""
    before = _entry_cursor(request.args.get("before"))
    try:
        account = ledger.account(pool(), user_id, _settings().eligible_statuses)
        statement = ledger.statement(pool(), user_id, limit=STATEMENT_PAGE, before=before)
    except ledger.InvalidArgument as exc:
        abort(400, str(exc))
    return render_template(
        "console/user.html",
        user_id=user_id,
        account=account,
        batches=reports.user_batches(pool(), user_id),
        statement=statement,
        paged=before is not None,
        grant_source=actions.GRANT_SOURCE,
    )


def _entry_cursor(text: str | None) -> int | None:
    """The statement's cursor: the last entry id of the page before."""
    if not text:
        return None
    if not (len(text) <= 19 and text.isascii() and text.isdigit() and int(text) > 0):
        abort(400, "Malformed page cursor.")
    return int(text)


@blueprint.route("/finance")
def finance() -> ResponseReturnValue:
    """Per month: granted by source, spent, expired, voided, and the balance outstanding."""
    months = reports.ledger_by_month(pool())
    return render_template(
        "console/finance.html",
        months=months,
        sources=reports.sources(months),
        flows=reports.flow_chart(months, "month"),
        outstanding=reports.outstanding_chart(months, "month"),
    )


@blueprint.route("/finance.csv")
def finance_csv() -> ResponseReturnValue:
    """The finance report as a CSV download."""
    body = reports.finance_csv(reports.ledger_by_month(pool()))
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="credits-finance.csv"'},
    )


@blueprint.route("/audit")
def audit() -> ResponseReturnValue:
    """Every console action, newest first: who, when, what, and what came of it."""
    before = _entry_cursor(request.args.get("before"))
    rows = reports.console_actions(pool(), before, AUDIT_PAGE)
    cursor = rows[-1]["id"] if len(rows) == AUDIT_PAGE else None
    return render_template("console/audit.html", actions=rows, cursor=cursor, paged=bool(before))


# The actions. Each is a GET that shows what it will do and asks to confirm, then a POST that
# does it, says what happened (flash) and goes back to the user's page (303: a reload repeats
# nothing). Viewers get 403 for both.


@blueprint.route("/users/<path:user_id>/grant", methods=["GET", "POST"])
@operator_required
def grant(user_id: str) -> ResponseReturnValue:
    """Confirm a grant (GET), then make it (POST), once per form."""
    form: dict[str, Any] = request.values.to_dict()
    try:
        # The confirm form carries the key made for it; a POST without one is refused.
        key = form.get("key", "") if request.method == "POST" else None
        asked = actions.grant_asked(user_id, form, key)
    except actions.BadRequest as exc:
        return _refused(user_id, str(exc))
    if request.method == "GET":
        account = ledger.account(pool(), user_id, _settings().eligible_statuses)
        return render_template("console/confirm_grant.html", asked=asked, account=account)
    return _done(user_id, actions.grant(pool(), g.operator, asked))


@blueprint.route("/users/<path:user_id>/reverse", methods=["GET", "POST"])
@operator_required
def reverse(user_id: str) -> ResponseReturnValue:
    """Confirm the reversal of a spend (GET), then reverse it (POST)."""
    reference_id = request.values.get("reference_id", "")
    if request.method == "GET":
        spend = actions.user_spend(pool(), user_id, reference_id)
        if not spend["spent"]:
            return _refused(user_id, f"{user_id} has no spend with reference {reference_id!r}.")
        return render_template(
            "console/confirm_reverse.html",
            user_id=user_id,
            reference_id=reference_id,
            spend=spend,
        )
    try:
        why = actions.reason(request.form.to_dict())
    except actions.BadRequest as exc:
        return _refused(user_id, str(exc))
    return _done(user_id, actions.reverse(pool(), g.operator, user_id, reference_id, why))


@blueprint.route("/users/<path:user_id>/void", methods=["GET", "POST"])
@operator_required
def void(user_id: str) -> ResponseReturnValue:
    """Confirm the void of a one-off grant (GET), then void it (POST)."""
    reference_id = request.values.get("reference_id", "")
    if request.method == "GET":
        batch = actions.user_grant(pool(), user_id, reference_id)
        if batch is None:
            return _refused(user_id, f"{user_id} has no grant with reference {reference_id!r}.")
        return render_template(
            "console/confirm_void.html", user_id=user_id, reference_id=reference_id, batch=batch
        )
    try:
        why = actions.reason(request.form.to_dict())
    except actions.BadRequest as exc:
        return _refused(user_id, str(exc))
    return _done(user_id, actions.void(pool(), g.operator, user_id, reference_id, why))


def _done(user_id: str, outcome: actions.Outcome) -> ResponseReturnValue:
    """Say what the action did on the user's page."""
    flash(outcome.message, "error" if outcome.result == "refused" else "success")
    return redirect(url_for("console.user", user_id=user_id), 303)


def _refused(user_id: str, message: str) -> ResponseReturnValue:
    """Back to the user's page with why nothing was done."""
    flash(message, "error")
    return redirect(url_for("console.user", user_id=user_id), 303)
