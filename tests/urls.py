from django.contrib import admin
from django.urls import path

from tests.testapp.views import async_api_tour

urlpatterns = [path("async-api-tour/", async_api_tour), path("admin/", admin.site.urls)]
