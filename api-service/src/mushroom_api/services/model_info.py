"""The served bundle as GET /model shows it."""

from __future__ import annotations

from mushroom_api.schemas import ModelInfoPublic
from mushroom_api.services.classifier import Classifier
from mushroom_api.services.model_store import ModelHolder


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
        variant=metadata.serving_variant,
        data_status=metadata.data_status,
        # The holder's source describes its current classifier; a request holding an older
        # one (swapped meanwhile) was served from the registry or the same fallback.
        source=holder.source if holder.current is classifier and holder.source else "registry",
        degraded_reason=holder.degraded_reason if holder.current is classifier else None,
    )
