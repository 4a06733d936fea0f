"""Server-rendered pages of the shell: home, sign-in, sign-out, language switch, account."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from market import identity
from market.db import transaction
from market.errors import InvalidCredentials, MarketError, Throttled
from market.metrics import LOGIN_FAILURES, LOGIN_THROTTLED
from market.parties import Actor
from web import auth, i18n


def locale_of(request: Request) -> str:
    cached = getattr(request.state, "locale", None)
    if cached:
        return str(cached)
    loc = i18n.negotiate(request.cookies.get(auth.LANG_COOKIE), request.headers.get("accept-language"))
    request.state.locale = loc
    return loc


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    locale = locale_of(request)

    def translate(message: str, **params: object) -> str:
        return i18n.gettext(locale, message, **params)

    def error_text(code: str, detail: str = "") -> str:
        """The translated message of an error code; the server's detail when none is catalogued."""
        key = f"error.{code}"
        text = translate(key)
        return detail if text == key and detail else (text if text != key else translate("error.generic"))

    return {
        "_": translate,
        "error_text": error_text,
        "locale": locale,
        "html_lang": i18n.HTML_LANG[locale],
        "other_locale": "en" if locale == "zh_CN" else "zh_CN",
        "actor": getattr(request.state, "actor", None),
        "csrf_token": auth.csrf_token(request),
        "current_path": _local_path(
            str(request.url.path) + ("?" + request.url.query if request.url.query else "")
        ),
        **extra,
    }


def render(request: Request, template: str, status_code: int = 200, **extra: Any) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, template, page_context(request, **extra), status_code=status_code
    )
    auth.set_anon_cookie_if_new(request, response)
    return response


async def load_actor(request: Request) -> Actor | None:
    async with transaction(request.app.state.engine) as conn:
        actor = await auth.actor_for_page(request, conn)
    request.state.actor = actor
    return actor


def _local_path(target: str | None) -> str:
    """Only same-site relative paths are followed after sign-in or a language switch."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
    ):
        return "/"
    return target


async def home(request: Request) -> Response:
    await load_actor(request)
    return render(request, "home.html")


async def login_form(request: Request) -> Response:
    await load_actor(request)
    return render(request, "auth/login.html", next=_local_path(request.query_params.get("next")))


async def login_submit(request: Request) -> Response:
    form = await request.form()
    auth.check_form_csrf(request, _str(form.get("csrf_token")))
    email, password = _str(form.get("email")).strip().lower(), _str(form.get("password"))
    target = _local_path(_str(form.get("next")))
    settings = request.app.state.settings
    engine = request.app.state.engine
    client = request.client.host if request.client else "unknown"
    failed: InvalidCredentials | None = None
    try:
        async with transaction(engine) as conn:
            try:
                user = await identity.authenticate(
                    conn,
                    email=email,
                    password=password,
                    client=client,
                    limit=settings.login_max_failures,
                    window=settings.login_window_seconds,
                )
            except InvalidCredentials as exc:  # counted under the throttle's lock, in this transaction
                await identity.record_login_failure(conn, [f"email:{email}", f"ip:{client}"])
                failed = exc
            else:
                issued = await identity.issue_session(
                    conn, user, kind="cookie", ttl_seconds=settings.session_ttl_seconds
                )
    except Throttled as exc:
        LOGIN_THROTTLED.inc()
        response = _login_error(request, exc, target, email)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if failed is not None:
        LOGIN_FAILURES.inc()
        return _login_error(request, failed, target, email)
    response = RedirectResponse(target, status_code=303)
    auth.set_session_cookie(request, response, issued.token, settings.session_ttl_seconds)
    return response


def _login_error(request: Request, exc: MarketError, target: str, email: str) -> Response:
    request.state.actor = None
    status = 429 if isinstance(exc, Throttled) else 401
    return render(
        request, "auth/login.html", status_code=status, error_code=exc.code, next=target, email=email
    )


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


async def logout(request: Request) -> Response:
    form = await request.form()
    auth.check_form_csrf(request, _str(form.get("csrf_token")))
    actor = await load_actor(request)
    if actor is not None:
        async with transaction(request.app.state.engine) as conn:
            await identity.revoke_session(conn, actor)
    response = RedirectResponse("/", status_code=303)
    auth.clear_session_cookie(response)
    return response


async def switch_language(request: Request) -> Response:
    code = request.path_params["code"]
    locale = code if code in i18n.LOCALES else i18n.DEFAULT_LOCALE
    response = RedirectResponse(_local_path(request.query_params.get("next")), status_code=303)
    response.set_cookie(
        auth.LANG_COOKIE,
        locale,
        max_age=365 * 86400,
        samesite="lax",
        path="/",
        secure=auth.cookie_secure(request),
    )
    return response


async def account(request: Request) -> Response:
    actor = await load_actor(request)
    if actor is None:
        return RedirectResponse("/login?next=/account", status_code=303)
    async with transaction(request.app.state.engine) as conn:
        org = await identity.get_org(conn, actor.org_id)
    return render(request, "account.html", org=org)


ROUTES = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/login", login_form, methods=["GET"], name="login_form"),
    Route("/login", login_submit, methods=["POST"], name="login_submit"),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/lang/{code}", switch_language, methods=["GET"], name="switch_language"),
    Route("/account", account, methods=["GET"], name="account"),
]
