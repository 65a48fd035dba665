from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from apps.whatsapp.asgi import webhook_verify_response
from apps.whatsapp.webhooks import webhook_ingest


@method_decorator(csrf_exempt, name="dispatch")
class WhatsAppWebhookView(View):
    """The webhook for WSGI servers and Django's test client; ASGI serves it from apps.whatsapp.asgi."""

    def get(self, request: HttpRequest) -> HttpResponse:
        status, body, content_type = webhook_verify_response({k: request.GET.getlist(k) for k in request.GET})
        return HttpResponse(body, status=status, content_type=content_type.decode())

    def post(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.WHATSAPP_WEBHOOK_MAX_BYTES:
            return JsonResponse({"code": "payload_too_large", "message": "The body is too large."}, status=413)
        result = webhook_ingest(body=request.body, signature_header=request.headers.get("X-Hub-Signature-256"))
        return HttpResponse(json.dumps(result.body), status=result.status, content_type="application/json")
