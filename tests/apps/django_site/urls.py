from django.urls import path

from tests.apps.django_site import views

urlpatterns = [
    path("", views.index),
    path("echo", views.echo),
    path("page", views.page),
    path("stream", views.stream),
    path("boom", views.boom),
    path("canary-only", views.canary_only),
]
