from django.urls import path

from graysite import views

urlpatterns = [
    path("", views.index),
    path("echo", views.echo),
    path("page", views.page),
    path("v2/checkout", views.new_checkout),
]
