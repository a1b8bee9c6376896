"""The few Kubernetes API calls the operator makes, as plain async methods over dicts.

Server-side apply with one fixed field manager, list by label, delete, post an Event. The
`kubernetes` client supplies configuration and authentication (kubeconfig or in-cluster);
requests go through its REST layer in a worker thread, so the kopf event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

FIELD_MANAGER = "cobstack-operator"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path


KINDS = {k.kind: k for k in (
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Service", "services"),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("v1", "Event", "events"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("batch/v1", "Job", "jobs"),
    Kind("cobstack.dev/v1alpha1", "CobStack", "cobstacks"),
)}
CHILD_KINDS = ("ConfigMap", "Service", "PersistentVolumeClaim", "StatefulSet", "Deployment", "Job")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, method: str, path: str,
                 causes: tuple[str, ...] = ()):
        super().__init__(f"{method} {path}: HTTP {status} {reason}: {message}")
        self.status, self.reason, self.message, self.causes = status, reason, message, causes

    @property
    def invalid(self) -> bool:
        """The API server refused the object itself (validation), not the request."""
        return self.status in (400, 422)

    @property
    def namespace_terminating(self) -> bool:
        return "NamespaceTerminating" in self.causes


def load_configuration() -> client.Configuration:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return configuration


class Kube:
    def __init__(self, configuration: client.Configuration | None = None):
        self.api = client.ApiClient(configuration or load_configuration())

    def close(self) -> None:
        self.api.close()

    def _request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                 body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        _, url, headers, payload, _ = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, header_params=headers, body=payload,
                                     _request_timeout=TIMEOUT_S)
        data = response.read()
        parsed = json.loads(data) if data else {}
        if response.status >= 400:
            causes = tuple(c.get("reason", "") for c in (parsed.get("details") or {}).get("causes", []))
            raise ApiError(response.status, parsed.get("reason", response.reason or ""),
                           parsed.get("message", data.decode(errors="replace")[:500]), method, path, causes)
        return parsed

    async def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._request, method, path, **kwargs)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.call("GET", KINDS[kind].path(namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        out = await self.call("GET", KINDS[kind].path(namespace), query=[("labelSelector", labels)])
        for item in out.get("items", []):  # list items come without their type
            item.setdefault("kind", kind)
        return out.get("items", [])

    async def apply(self, obj: dict[str, Any], *, dry_run: bool = False,
                    subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply as FIELD_MANAGER, taking over fields someone else changed (force)."""
        meta = obj["metadata"]
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if dry_run:
            query.append(("dryRun", "All"))
        path = KINDS[obj["kind"]].path(meta["namespace"], meta["name"], subresource)
        return await self.call("PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml")

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            await self.call("DELETE", KINDS[kind].path(namespace, name), body=body)
        except ApiError as e:
            if e.status != 404:
                raise

    async def event(self, owner: dict[str, Any], type_: str, reason: str, message: str, now: str) -> None:
        meta = owner["metadata"]
        await self.call("POST", KINDS["Event"].path(meta["namespace"]), body={
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })
