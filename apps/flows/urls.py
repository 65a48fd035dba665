from django.urls import path

from apps.flows.views import FlowBuilderPageView

urlpatterns = [
    path("flows/<int:flow_id>/builder/", FlowBuilderPageView.as_view(), name="flow-builder"),
]
