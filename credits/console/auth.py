"""The console's blueprint and who may use it: sign-in, sign-out, sessions, roles, CSRF."""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from credits import db
from credits.console import operators
from credits.console.site import csrf

P = ParamSpec("P")
R = TypeVar("R")

blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# What a browser may load on a console page: its own files only, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PUBLIC_ENDPOINTS = {"console.login", "console.static"}


def pool() -> db.Pool:
    """The service's pool, kept by the app factory."""
    service_pool: db.Pool = current_app.extensions["credits"]["pool"]
    return service_pool


@blueprint.before_request
def guard() -> ResponseReturnValue | None:
    """Check every POST's CSRF token, then send a request without a session to the sign-in."""
    csrf.protect()  # GET and HEAD pass; a POST without a valid token: CSRFError, 400
    g.operator = _signed_in()
    if g.operator is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")), 303)
    return None


def _signed_in() -> operators.Operator | None:
    """The session's operator, while they exist with the password they signed in with."""
    name, stamp = session.get("operator"), session.get("stamp")
    if not isinstance(name, str) or not isinstance(stamp, str):
        return None
    operator = operators.find(pool(), name)
    if operator is None or not operators.same_stamp(operator.stamp, stamp):
        session.clear()
        return None
    return operator


def operator_required(view: Callable[P, R]) -> Callable[P, R]:
    """Let only the operator role through (a viewer sees, never acts): 403 for the others."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not g.operator.can_act:
            abort(403, "Your role is viewer: you may look, not act.")
        return view(*args, **kwargs)

    return wrapper


@blueprint.after_request
def harden(response: ResponseReturnValue) -> ResponseReturnValue:
    """Headers that keep the console's pages out of frames, caches and other sites' scripts."""
    from flask import Response

    assert isinstance(response, Response)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form; a right name and password opens a session of 12 hours."""
    if request.method == "GET":
        return render_template("console/login.html", name="", next=_next_page())
    name = request.form.get("name", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    try:
        operator = operators.sign_in(pool(), name, password, address)
    except operators.TooManyFailures:
        flash("Too many failed sign-ins for this name or address: wait a minute.", "error")
        return render_template("console/login.html", name=name, next=_next_page()), 429
    if operator is None:
        flash("Wrong name or password.", "error")
        return render_template("console/login.html", name=name, next=_next_page()), 401
    session.clear()  # a new session: nothing of the one before sign-in is carried over
    session.permanent = True
    session["operator"], session["stamp"] = operator.name, operator.stamp
    return redirect(_next_page(), 303)


@blueprint.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    """End the session."""
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"), 303)


def _next_page() -> str:
    """Where to go after signing in: a console path asked for, else the overview."""
    wanted = request.values.get("next", "")
    if (
        wanted.startswith("/admin/")
        and not wanted.startswith("/admin/login")
        and "\\" not in wanted
    ):
        return wanted
    return url_for("console.overview")


@blueprint.errorhandler(CSRFError)
def csrf_error(exc: CSRFError) -> ResponseReturnValue:
    """400: the form's token is missing, stale or from another session; nothing was done."""
    message = "The form is out of date or was not sent by this console: nothing was done."
    return render_template("console/error.html", code=400, message=message), 400


@blueprint.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    """werkzeug's status, as a console page."""
    return render_template("console/error.html", code=exc.code, message=exc.description), (
        exc.code or 500
    )
