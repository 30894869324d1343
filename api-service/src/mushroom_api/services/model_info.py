"""The served bundle as GET /model shows it."""

from __future__ import annotations

from mushroom_api.schemas import ModelInfoPublic
from mushroom_api.services.classifier import Classifier


def model_info(classifier: Classifier) -> ModelInfoPublic:
    """Metadata and metrics of the served bundle."""
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
    )
