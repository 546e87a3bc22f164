"""A small stand-in for the Workload Tracker backend (Django), enough to run the guide's
checks behind rampart: health, a JWT-style token endpoint, a refresh cookie set without
flags (rampart adds HttpOnly, Secure and SameSite=Lax), imports and the admin.

Run: gunicorn tracker:application --bind 127.0.0.1:8000
"""

import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-" + "x" * 50),
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=os.environ.get("ALLOWED_HOSTS", "localhost").split(","),
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    USE_X_FORWARDED_HOST=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)

import json  # noqa: E402

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def health(request):
    return JsonResponse({"status": "healthy", "service": "workload-tracker"})


@csrf_exempt
def token(request):
    body = json.loads(request.body or b"{}")
    if body.get("password") != "correct horse battery staple":
        return JsonResponse({"detail": "No active account found"}, status=401)
    resp = JsonResponse({"access": "eyJ.access.token"})
    resp.set_cookie("refresh_token", "r" * 32, path="/api/token/")
    return resp


@csrf_exempt
def people_import(request):
    return JsonResponse({"imported_bytes": len(request.body)})


def projects(request):
    return JsonResponse([{"id": 1, "name": "Bridge"}], safe=False)


def admin(request):
    return HttpResponse("<h1>Django administration</h1>")


urlpatterns = [
    path("api/health/", health),
    path("api/token/", token),
    path("api/people/import/", people_import),
    path("api/projects/import/", people_import),
    path("api/projects/", projects),
    path("admin/", admin),
]

application = get_wsgi_application()
