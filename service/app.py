"""The Flask application factory.

    app = create_app({"redis_url": "redis://127.0.0.1:6390/0", "api_key": "k"})

Settings come from defaults, then the environment (ARTBANDIT_*), then `config` (lower-case keys are
`Settings` fields; upper-case keys go to Flask's own config, e.g. TESTING). Nothing touches Redis
here: the per-process state (`service.state.Artbandit`) connects on first use, after gunicorn forks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from service.config import Settings
from service.metrics import Metrics
from service.state import EXTENSION, Artbandit
from service.web import register_api
from service.web.encoding import FastJSONProvider
from service.web.hot import HotPath


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config`: Settings fields (lower case) and Flask config keys (upper case)."""
    config = dict(config or {})
    flask_config = {k: v for k, v in config.items() if k.isupper()}
    settings = Settings.load({k: v for k, v in config.items() if not k.isupper()})
    app = Flask(__name__, static_folder=None)  # the dashboard blueprint serves its own assets
    app.json = FastJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config.update(flask_config)
    app.extensions[EXTENSION] = Artbandit(settings, Metrics())
    register_api(app)
    HotPath.install(app)  # POST /impression and /click without Flask's per-request machinery
    return app
