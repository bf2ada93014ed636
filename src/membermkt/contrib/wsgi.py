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

from membermkt.contrib._body import BodyRefused, body_limit, declared_length, read_limited
from membermkt.contrib.asgi import _appid_from_path, _Handler

__all__ = ["django_view", "flask_view", "wsgi_app"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _wsgi_body(environ: dict[str, Any], limit: int) -> bytes:
    length = declared_length(environ.get("CONTENT_LENGTH"), limit)
    stream = environ["wsgi.input"]
    if length is None:
        if environ.get("REQUEST_METHOD") != "POST":
            return b""
        if not environ.get("wsgi.input_terminated"):
            # Without a length, reading a plain WSGI input could block or overrun.
            raise BodyRefused(411, "Content-Length required")
    return read_limited(stream.read, length, limit)


def wsgi_app(handler: _Handler) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    """A WSGI application serving ``handler``.

    The body is never buffered past the handler's ``max_body`` (default 1 MiB): a declared
    ``Content-Length`` over it is answered 413 without reading the body; a POST without
    ``Content-Length`` is read up to the limit when the server delimits it
    (``wsgi.input_terminated``) and answered 411 otherwise.
    """

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            body = _wsgi_body(environ, body_limit(handler))
        except BodyRefused as refused:
            status, headers, out = refused.response()
        else:
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

        try:
            body = _wsgi_body(request.environ, body_limit(handler))
        except BodyRefused as refused:
            status, headers, out = refused.response()
        else:
            status, headers, out = handler.handle(
                request.method,
                request.args.to_dict(),
                body,
                appid=kwargs.get("appid") or _appid_from_path(handler, request.path),
            )
        return Response(out, status=status, headers=headers)

    view.__name__ = "membermkt_wechat_callback"
    return view


def django_view(handler: _Handler) -> Callable[..., Any]:
    """A Django view (CSRF-exempt: WeChat signs its pushes instead)."""

    def view(request: Any, appid: str | None = None) -> Any:
        from django.http import HttpResponse  # type: ignore[import-untyped]

        limit = body_limit(handler)
        try:
            length = declared_length(request.META.get("CONTENT_LENGTH"), limit)
            if length is None and request.method == "POST":
                raise BodyRefused(411, "Content-Length required")
            body = read_limited(request.read, length, limit) if length else b""
        except BodyRefused as refused:
            status, headers, out = refused.response()
        else:
            status, headers, out = handler.handle(
                request.method,
                request.GET.dict(),
                body,
                appid=appid or _appid_from_path(handler, request.path),
            )
        response = HttpResponse(out, status=status)
        for k, v in headers:
            response[k] = v
        return response

    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view
