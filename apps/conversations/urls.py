from django.urls import path

from apps.conversations.views import (
    InboxPageView,
    MessageMediaView,
    SimulatorPageView,
    SimulatorSendApi,
    SimulatorThreadApi,
)

urlpatterns = [
    path("inbox/", InboxPageView.as_view(), name="inbox"),
    path("inbox/media/<int:message_id>/", MessageMediaView.as_view(), name="message-media"),
    path("simulator/", SimulatorPageView.as_view(), name="simulator"),
    path("simulator/send/", SimulatorSendApi.as_view(), name="simulator-send"),
    path("simulator/thread/", SimulatorThreadApi.as_view(), name="simulator-thread"),
]
