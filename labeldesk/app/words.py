"""Words for people: models, parameters, provenance and counts as a reviewer reads them.

The window's commit dialog and run chooser and the CLI's ``show`` print the same things; they
all say them through these functions, so a model is called by its name and its parameters by
what they mean, never by a 64-digit hash and a Python dict. No Qt here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labeldesk.core.store.db import ProjectDatabase as Database

#: what each inference parameter means, in the order they are said
PARAM_WORDS = (
    ("conf", "confidence ≥ {}"),
    ("iou", "overlap (NMS IoU) {}"),
    ("imgsz", "image size {} px"),
)

#: how a provenance key is said by ``show`` (keys not here are said as they are)
PROVENANCE_WORDS = {
    "method": "method",
    "model": "model",
    "model_params": "model parameters",
    "reviewer": "reviewer",
    "session": "review session",
    "base": "based on",
    "reviewed_images": "images reviewed",
    "sources": "sources",
    "format": "format",
    "preprocessing": "repairs",
    "options": "options",
}


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 conflict``, ``2 conflicts``, ``0 conflicts``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def params_text(params: Mapping[str, Any] | None) -> str:
    """``confidence ≥ 0.25, overlap (NMS IoU) 0.7, image size 640 px``; unknown keys follow
    as ``key value``."""
    if not params:
        return "default parameters"
    known = dict(PARAM_WORDS)
    parts = [known[k].format(_number(params[k])) for k, _ in PARAM_WORDS if k in params]
    parts += [f"{k} {_number(v)}" for k, v in sorted(params.items()) if k not in known]
    return ", ".join(parts)


def model_name(db: Database, model_id: str | None) -> str:
    """The model's name (its id's first 12 digits if it is no longer in the project)."""
    if not model_id:
        return "no model"
    row = db.execute("SELECT name FROM model WHERE id = ?", [model_id]).fetchone()
    return row[0] if row else f"model {model_id[:12]} (removed)"


def model_text(db: Database, model_id: str | None, params: Mapping[str, Any] | None) -> str:
    """``shapes-v2 (confidence ≥ 0.25, overlap (NMS IoU) 0.7, image size 640 px)``."""
    if not model_id:
        return "no model"
    return f"{model_name(db, model_id)} ({params_text(params)})"


def method_text(provenance: Mapping[str, Any]) -> str:
    """How the labels were made; a version with no labelling method (an import, added images)
    says where they came from instead of ``None``."""
    method = provenance.get("method")
    if method:
        return str(method)
    fmt = provenance.get("format")
    if fmt == "images":
        return "images added (no labelling)"
    if fmt:
        return f"imported ({fmt})"
    return "not recorded"


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value_text(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def provenance_lines(db: Database, provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) per provenance fact, in words: method first, the model by name with its
    parameters, no ``None`` anywhere (facts that do not apply are left out)."""
    prov = dict(provenance)
    lines = [("method", method_text(prov))]
    model = prov.pop("model", None)
    params = prov.pop("model_params", None)
    prov.pop("method", None)
    lines.append(("model", model_text(db, model, params) if model else "none"))
    for key in sorted(prov):
        value = prov[key]
        if value is None:
            continue
        lines.append((PROVENANCE_WORDS.get(key, key), _value_text(value)))
    return lines


def minute_text(iso: str) -> str:
    """A stored timestamp as every view shows it: to the minute, in UTC, saying so."""
    from labeldesk.core.timestamps import format_time

    return format_time(iso)


def suggestion_words() -> Mapping[str, str]:
    """What each kind of suggestion is called on screen."""
    from labeldesk.core.review.suggestions import KIND_WORDS

    return KIND_WORDS


def trend_labels() -> Any:
    """The agreement figures drawn per session, with their legend labels."""
    from labeldesk.core.validation.agreement import TREND_LABELS

    return TREND_LABELS
