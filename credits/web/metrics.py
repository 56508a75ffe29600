"""GET /metrics for Prometheus, behind a bearer token, and the count of every request answered.

The app factory calls init_app before it registers the other routes, so a request's clock
starts before anything else looks at it (a refused one is counted too), and start_counts after
them all.
"""

import time
from typing import TypedDict

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from credits import metrics
from credits.db import Pool
from credits.web import auth

blueprint = Blueprint("metrics", __name__)


class Exposition(TypedDict):
    """What init_app keeps in app.extensions["credits_metrics"]."""

    registry: CollectorRegistry
    requests: metrics.RequestMetrics
    tokens: tuple[str, ...]


def init_app(app: Flask, pool: Pool, tokens: tuple[str, ...]) -> None:
    """Give the app its own metrics registry and the /metrics route, accepting these tokens."""
    registry, requests = metrics.scrape_registry(pool)
    app.extensions["credits_metrics"] = Exposition(
        registry=registry, requests=requests, tokens=tokens
    )
    app.register_blueprint(blueprint)


def start_counts(app: Flask) -> None:
    """Start the request series of every route the app has now at 0; call it last."""
    app.extensions["credits_metrics"]["requests"].start_at_zero(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    )


def _exposition() -> Exposition:
    """The registry, request metrics and tokens init_app kept."""
    exposition: Exposition = current_app.extensions["credits_metrics"]
    return exposition


@blueprint.before_app_request
def start_clock() -> None:
    """Note when the request started."""
    g.metrics_started = time.perf_counter()


@blueprint.after_app_request
def count_request(response: Response) -> Response:
    """Count the answered request under its route, method and status."""
    started = g.get("metrics_started")
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else None
        seconds = time.perf_counter() - started
        _exposition()["requests"].observe(route, request.method, response.status_code, seconds)
    return response


@blueprint.route("/metrics")
def scrape() -> ResponseReturnValue:
    """The metrics in Prometheus' text format; 401 without an accepted bearer token."""
    exposition = _exposition()
    if not auth.authorized(exposition["tokens"]):
        return jsonify(error="Unauthorized"), 401
    return Response(generate_latest(exposition["registry"]), content_type=CONTENT_TYPE_LATEST)
