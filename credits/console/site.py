"""The console in the app (docs/CONSOLE.md): its sessions, CSRF protection and routes, added by
init_app only when CREDITS_CONSOLE_KEY is set."""

from datetime import timedelta

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

SESSION_HOURS = 12

csrf = CSRFProtect()


class ConsoleSessions(SecureCookieSessionInterface):
    """Signed cookie sessions whose cookie is Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        from flask import request

        return _over_https(request)


def _over_https(request: Request) -> bool:
    """True for https, directly or through a proxy that says so (X-Forwarded-Proto).

    Trusting the header here is safe: at worst a caller makes its own cookie Secure.
    """
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or forwarded == "https"


def init_app(app: Flask, key: str) -> None:
    """Add the console to the service, its sessions signed with key."""
    from credits.console import actions, auth, pages  # noqa: F401  (they add their routes)

    app.secret_key = key
    app.config.update(
        SESSION_COOKIE_NAME="credits_console",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # CSRF tokens are checked by the console's blueprint only (auth.guard): the job routes
        # are POSTed by schedulers, which carry a bearer secret or QStash's signature instead.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session, 12 hours at most
    )
    app.session_interface = ConsoleSessions()
    csrf.init_app(app)
    app.register_blueprint(auth.blueprint)
