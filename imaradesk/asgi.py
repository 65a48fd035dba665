"""ASGI entry point: HTTP through Django, websockets through Channels (tenant from Host)."""

from __future__ import annotations

import gc
import os
import warnings
from typing import Any

# WhiteNoise serves static files with a synchronous iterator; under ASGI Django consumes
# it in a thread and warns on every file. The files are small and cached: not worth a warning each.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.core.asgi_middleware import TenantAuthMiddleware  # noqa: E402
from apps.whatsapp.asgi import is_webhook_request, whatsapp_webhook_app  # noqa: E402
from imaradesk.routing import websocket_urlpatterns  # noqa: E402


async def http_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django for every HTTP request but Meta's webhook, which takes the lean path."""
    if is_webhook_request(scope):
        await whatsapp_webhook_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": AllowedHostsOriginValidator(TenantAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far lives as long as the process: move it out of the garbage collector's
# reach. Full collections otherwise walked these ~150k objects again and again, 120-160 ms each
# on a 2-core machine, stalling every socket of the process in the middle of a fan-out
# (measured with benchmarks/inbox_fanout.py).
gc.freeze()
