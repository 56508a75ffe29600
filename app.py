"""The front door: the app factory, which reads the settings, opens the pool, adds the routes."""

import os
from collections.abc import Mapping
from typing import Any, cast

from flask import Flask
from flask.json.provider import DefaultJSONProvider

import credits
from credits import config, db
from credits.console import settings as console_settings
from credits.console import site as console
from credits.web import auth, metrics, routes


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the service: settings from the environment, then test overrides."""
    values = {**os.environ, **(test_config or {})}
    settings = config.Settings.from_mapping(values)
    credits.configure_logging(settings.log_format)
    secrets = config.cron_secrets(settings)  # before anything else: no secret, no service
    metrics_tokens = config.metrics_tokens(settings, secrets)
    console_key = console_settings.console_key(values)  # a short key stops the start too
    pool = db.open_pool(settings)  # never waits for the database: a 503 until it answers

    app = Flask(__name__)
    # Keep the documented order of the response fields.
    cast(DefaultJSONProvider, app.json).sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = auth.MAX_BODY_BYTES  # a chunked body too, as it is read
    app.extensions["credits"] = {"settings": settings, "pool": pool, "secrets": secrets}
    metrics.init_app(app, pool, metrics_tokens)  # first: its clock starts before any check
    app.register_blueprint(routes.blueprint)
    if console_key is not None:  # off unless its key is set: every /admin path answers 404
        console.init_app(app, console_key)
    metrics.start_counts(app)  # last: every route's error series start at 0
    return app
