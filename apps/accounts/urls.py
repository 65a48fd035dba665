from django.urls import path

from apps.accounts.api import MeApi, TokenCreateApi

urlpatterns = [
    path("me/", MeApi.as_view(), name="me"),
    path("auth/token/", TokenCreateApi.as_view(), name="token-create"),
]
