"""Mount a callback handler in WSGI frameworks (Flask, Django, any WSGI server).

Flask::

    app.add_url_rule("/wechat", view_func=flask_view(handler), methods=["GET", "POST"])

Django (``urls.py``)::

    path("wechat/", django_view(handler))

Any WSGI stack (e.g. werkzeug's ``DispatcherMiddleware``): :func:`wsgi_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from membermkt.contrib.asgi import _appid_from_path, _Handler

__all__ = ["django_view", "flask_view", "wsgi_app"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


def wsgi_app(handler: _Handler) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """A WSGI application serving ``handler``."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        status, headers, out = handler.handle(
            environ["REQUEST_METHOD"],
            query,
            body,
            appid=_appid_from_path(handler, environ.get("PATH_INFO", "")),
        )
        start_response(
            f"{status} {_REASONS.get(status, 'Status')}",
            [*headers, ("Content-Length", str(len(out)))],
        )
        return [out]

    return app


def flask_view(handler: _Handler) -> Callable[..., Any]:
    """A Flask view function (route it for GET and POST)."""

    def view(**kwargs: Any) -> Any:
        from flask import Response, request

        status, headers, out = handler.handle(
            request.method,
            request.args.to_dict(),
            request.get_data(),
            appid=kwargs.get("appid") or _appid_from_path(handler, request.path),
        )
        return Response(out, status=status, headers=headers)

    view.__name__ = "membermkt_wechat_callback"
    return view


def django_view(handler: _Handler) -> Callable[..., Any]:
    """A Django view (CSRF-exempt: WeChat signs its pushes instead)."""

    def view(request: Any, appid: str | None = None) -> Any:
        from django.http import HttpResponse  # type: ignore[import-untyped]

        status, headers, out = handler.handle(
            request.method,
            request.GET.dict(),
            request.body,
            appid=appid or _appid_from_path(handler, request.path),
        )
        response = HttpResponse(out, status=status)
        for k, v in headers:
            response[k] = v
        return response

    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view
