"""URLs of the platform's public host: the platform back office (and later the webhooks)."""

from django.urls import include, path
from django.views.generic import RedirectView

from apps.core.admin_sites import platform_admin_site
from apps.whatsapp.views import WhatsAppWebhookView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="platform_admin:index", permanent=False)),
    path("admin/", platform_admin_site.urls),
    path("webhooks/whatsapp/", WhatsAppWebhookView.as_view(), name="whatsapp-webhook"),
    path("i18n/", include("django.conf.urls.i18n")),
]
