"""The route registry and the typed app key every handler reaches the services through."""

from __future__ import annotations

from aiohttp import web

from appliance.api.framework import Api
from appliance.services import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
api = Api()


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]
