r"""The RithmicDataCollector HTTP API (Chalice): blueprints and middleware, nothing else.

Routes live in chalicelib/; settings are read from the environment on first use, so importing
this module does no I/O (benchmarks and tests import it and call `app` in-process, and
`chalicelib.db.reset_for_tests()` makes the next request re-read the environment).

Locally, with rdc_common importable (`pip install -e .` from the repository root):
    cd api_chalice
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/rithmic_db REDIS_URL=redis://127.0.0.1:6379/0 \
        chalice local --port 8000 --no-autoreload
For Lambda, `package.sh` vendors rdc_common before `chalice package`.
"""

from chalice import Chalice, ConvertToMiddleware
from chalicelib import (
    routes_archive,
    routes_data,
    routes_docs,
    routes_fallback,
    routes_gaps,
    routes_health,
    routes_live,
    routes_pages,
    routes_rolls,
    routes_subscriptions,
)
from chalicelib.middleware import guard, request_context
from chalicelib.observability import logger, metrics, tracer

app = Chalice(app_name="rdc-api", debug=False, configure_logs=False)

# Outermost first: Powertools clears and fills the log context, flushes metrics and traces the
# invocation; then our own context (request id, error shape) and the access checks.
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(ConvertToMiddleware(tracer.capture_lambda_handler(capture_response=False)))
app.register_middleware(request_context, "http")
app.register_middleware(guard, "http")

app.register_blueprint(routes_health.bp)
app.register_blueprint(routes_data.bp)
app.register_blueprint(routes_gaps.bp)
app.register_blueprint(routes_live.bp)
app.register_blueprint(routes_rolls.bp)
app.register_blueprint(routes_archive.bp)
app.register_blueprint(routes_subscriptions.bp)
app.register_blueprint(routes_docs.bp)
app.register_blueprint(routes_pages.bp)
# Last, so the catch-alls never shadow a real route.
app.register_blueprint(routes_fallback.bp)
