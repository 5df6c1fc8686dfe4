"""A small kustomize renderer for the subset deploy/k8s uses (kustomize itself is not installed in CI).

Supported kustomization fields: ``resources`` (files, or folders with their own kustomization.yaml),
``namespace``, ``labels`` (``pairs`` added to metadata.labels only, as with ``includeSelectors:
false``), ``images`` (``newName``/``newTag`` by image name), ``replicas`` and ``patches`` given by
``path``: strategic-merge documents that name their target by kind and metadata.name. The merge
recurses into maps, merges lists of maps by their ``name`` key (containers, env, volumes, ports) and
replaces other lists; ``null`` deletes a key. Real kustomize merges CRDs (no patch strategy known) by
JSON merge patch; the overlays only patch CRD scalars and maps, where both agree. Any other field is
refused, so an overlay cannot use a feature this renderer would silently ignore.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(folder: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}/kustomization.yaml uses {sorted(unknown)}, which kustomize_lite does not render")
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = folder / entry
        objects.extend(render(target) if target.is_dir() else load_documents(target))
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"only file patches are rendered: {patch}")
        for doc in load_documents(folder / patch["path"]):
            _apply_patch(objects, doc)
    for item in spec.get("replicas", []):
        found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet") and _name(o) == item["name"]]
        if len(found) != 1:
            raise ValueError(f"replicas: {item['name']} matches {len(found)} workloads")
        found[0]["spec"]["replicas"] = item["count"]
    for image in spec.get("images", []):
        _set_image(objects, image)
    for label in spec.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    _no_duplicates(objects)
    return objects


def _name(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


def _apply_patch(objects: list[dict[str, Any]], patch: dict[str, Any]) -> None:
    targets = [o for o in objects if o["kind"] == patch["kind"] and _name(o) == _name(patch)]
    if len(targets) != 1:
        raise ValueError(f"patch {patch['kind']}/{_name(patch)} matches {len(targets)} objects")
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind", "metadata")}
    merged = merge(targets[0], body)
    targets[0].clear()
    targets[0].update(merged)


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and all(
            isinstance(x, dict) and "name" in x for x in [*base, *patch]):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            index = next((i for i, x in enumerate(out) if x["name"] == item["name"]), None)
            if index is None:
                out.append(copy.deepcopy(item))
            else:
                out[index] = merge(out[index], item)
        return out
    return copy.deepcopy(patch)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec") if "template" in spec else None
    if pod is None:
        return []
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def _set_image(objects: list[dict[str, Any]], image: dict[str, str]) -> None:
    used = False
    for obj in objects:
        for container in _containers(obj):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
                used = True
    if not used:
        raise ValueError(f"images: {image['name']} is used by no container")


def _no_duplicates(objects: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        key = (obj["kind"], _name(obj))
        if key in seen:
            raise ValueError(f"{key} defined twice")
        seen.add(key)
