from django.urls import path

from apps.flows.api import (
    FlowActivateApi,
    FlowCheckApi,
    FlowDetailApi,
    FlowDraftImportApi,
    FlowExportApi,
    FlowImportApi,
    FlowListCreateApi,
    FlowPublishApi,
    FlowRevertApi,
    FlowTestRunApi,
    FlowVersionDetailApi,
    FlowVersionListApi,
)

urlpatterns = [
    path("flows/", FlowListCreateApi.as_view(), name="flow-list"),
    path("flows/import/", FlowImportApi.as_view(), name="flow-import"),
    path("flows/<int:flow_id>/", FlowDetailApi.as_view(), name="flow-detail"),
    path("flows/<int:flow_id>/check/", FlowCheckApi.as_view(), name="flow-check"),
    path("flows/<int:flow_id>/publish/", FlowPublishApi.as_view(), name="flow-publish"),
    path("flows/<int:flow_id>/revert/", FlowRevertApi.as_view(), name="flow-revert"),
    path("flows/<int:flow_id>/activate/", FlowActivateApi.as_view(), name="flow-activate"),
    path("flows/<int:flow_id>/versions/", FlowVersionListApi.as_view(), name="flow-versions"),
    path("flows/<int:flow_id>/versions/<int:number>/", FlowVersionDetailApi.as_view(), name="flow-version"),
    path("flows/<int:flow_id>/export/", FlowExportApi.as_view(), name="flow-export"),
    path("flows/<int:flow_id>/import/", FlowDraftImportApi.as_view(), name="flow-draft-import"),
    path("flows/<int:flow_id>/test-run/", FlowTestRunApi.as_view(), name="flow-test-run"),
]
