from django.urls import path

from apps.conversations.views import SimulatorPageView, SimulatorSendApi, SimulatorThreadApi

urlpatterns = [
    path("simulator/", SimulatorPageView.as_view(), name="simulator"),
    path("simulator/send/", SimulatorSendApi.as_view(), name="simulator-send"),
    path("simulator/thread/", SimulatorThreadApi.as_view(), name="simulator-thread"),
]
