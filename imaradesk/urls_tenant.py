"""URLs of a business's own host (<tenant-domain>)."""

from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from apps.core.admin_sites import tenant_admin_site

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inbox", permanent=False)),
    path("admin/", tenant_admin_site.urls),
    path("api/v1/", include("apps.accounts.urls")),
    path("api/v1/", include("apps.conversations.api_urls")),
    path("", include("apps.accounts.page_urls")),
    path("api/v1/knowledge/", include("apps.knowledge.urls")),
    path("api/v1/", include("apps.knowledge.copilot_urls")),
    path("api/v1/", include("apps.tickets.api_urls")),
    path("", include("apps.conversations.urls")),
    path("", include("apps.tickets.urls")),
    path("api/v1/", include("apps.flows.api_urls")),
    path("", include("apps.flows.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("i18n/", include("django.conf.urls.i18n")),
]
