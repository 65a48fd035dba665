from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.health import health_report


class HealthCheckMiddleware:
    """Answer GET /healthz and /ping on every host, before the tenant lookup, so probes need no tenant."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.rstrip("/") == "/ping" and request.method in ("GET", "HEAD"):
            # Liveness: the process answers. /healthz is readiness: its dependencies answer too.
            return HttpResponse(b"pong", content_type="text/plain")
        if request.path_info.rstrip("/") == "/healthz" and request.method in ("GET", "HEAD"):
            report = health_report()
            healthy = all(value == "ok" for value in report.values())
            response = JsonResponse(report, status=200 if healthy else 503)
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
