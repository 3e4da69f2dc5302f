"""The app for an external WSGI server, with sign-in always on.

``waitress-serve --threads 4 --port 8080 dashapp.wsgi:application`` (or any WSGI
server) serves it; ``pathways app --host 0.0.0.0 --workers 4`` does the same in one
command (see :mod:`dashapp.serve` and ``docs/deploy.md``). Settings come from the
environment: ``PATHWAYS_SECRET_KEY`` (set it), ``PATHWAYS_STORE_URL``,
``PATHWAYS_CACHE_DIR`` and the others of :mod:`dashapp.app` and :mod:`dashapp.auth`.
"""

from __future__ import annotations

from dashapp.app import create_app
from dashapp.serve import harden_proxy_headers, release_sockets_in_jobs

#: The Flask server of the Dash app (a WSGI application).
application = create_app(login=True).server
harden_proxy_headers(application)
# background jobs forked from the server must not keep its port and connections open
release_sockets_in_jobs()
