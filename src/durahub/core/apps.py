"""App identity: every instance belongs to one app, and the same instance id may exist in several apps.

As in Dapr, where an app's workflows live behind its own sidecar (actor type `dapr.internal.<ns>.<app>.workflow`),
an instance is named by (app id, instance id). The engine keys everything it keeps (rows, caches, leases, queues)
by one string, the instance *key* `"<app>|<instance id>"`: app ids cannot contain `|`, so the first `|` splits it
back, whatever the instance id holds. Keys never leave the engine; the wire shows the two parts.
"""

from __future__ import annotations

import re

from durahub.errors import InvalidAppId

KEY_SEPARATOR = "|"
# Dapr's rule for workflow app ids (daprd's crossapp/ops/invalidappid test): letters, digits, dash, underscore.
_VALID_APP_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def check_app_id(app_id: str) -> str:
    """`app_id` if it is a valid app id; InvalidAppId (with Dapr's message) otherwise."""
    if not _VALID_APP_ID.match(app_id):
        raise InvalidAppId(app_id)
    return app_id


def instance_key(app_id: str, instance_id: str) -> str:
    return f"{app_id}{KEY_SEPARATOR}{instance_id}"


def split_key(key: str) -> tuple[str, str]:
    """(app id, instance id) of an instance key."""
    app_id, _, instance_id = key.partition(KEY_SEPARATOR)
    return app_id, instance_id


def app_of(key: str) -> str:
    return key.partition(KEY_SEPARATOR)[0]


def id_of(key: str) -> str:
    return key.partition(KEY_SEPARATOR)[2]


def key_range(app_id: str) -> tuple[str, str]:
    """[low, high) of the keys of one app's instances, for range scans on the key column."""
    return f"{app_id}{KEY_SEPARATOR}", f"{app_id}{chr(ord(KEY_SEPARATOR) + 1)}"


def target_app(router: object, own_app: str) -> str:
    """The app a routed action or request addresses: the router's target when set, else the caller's own app
    (Dapr: an empty target, or the caller's own id, is local)."""
    target = getattr(router, "targetAppID", "") if router is not None else ""
    return target or own_app
