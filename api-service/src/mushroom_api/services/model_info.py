"""The served bundle as GET /model shows it."""

from __future__ import annotations

from mushroom_api.schemas import ModelInfoPublic
from mushroom_api.services.classifier import Classifier
from mushroom_api.services.model_store import ModelHolder

# Metadata metric keys of each photo set (bundles written by `mushroom-train field-head`).
EVALUATION_SETS = (("field_val", "field_val_"), ("field_test", "field_"))


def evaluation_columns(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """The metrics split into photo sets: `field_val_*`, `field_*` and the rest (`test`).

    Bundles measured before the field test have no `field_` keys: an empty answer then, so a
    client never mistakes thumbnail numbers for field numbers.
    """
    columns: dict[str, dict[str, float]] = {name: {} for name, _ in EVALUATION_SETS}
    columns["test"] = {}
    for key, value in metrics.items():
        for name, prefix in EVALUATION_SETS:
            if key.startswith(prefix):
                columns[name][key.removeprefix(prefix)] = value
                break
        else:
            columns["test"][key] = value
    if not columns["field_test"]:
        return {}
    return columns


def model_info(classifier: Classifier, holder: ModelHolder) -> ModelInfoPublic:
    """Metadata and metrics of the served bundle, and where it came from."""
    metadata = classifier.metadata
    return ModelInfoPublic(
        name=metadata.name,
        version=metadata.version,
        labels=metadata.labels,
        input_size=(metadata.input.height, metadata.input.width),
        dataset_version=metadata.dataset_version,
        created_at=metadata.created_at,
        metrics=metadata.metrics,
        evaluation=evaluation_columns(metadata.metrics),
        variant=metadata.serving_variant,
        data_status=metadata.data_status,
        # The holder's source describes its current classifier; a request holding an older
        # one (swapped meanwhile) was served from the registry or the same fallback.
        source=holder.source if holder.current is classifier and holder.source else "registry",
        degraded_reason=holder.degraded_reason if holder.current is classifier else None,
    )
