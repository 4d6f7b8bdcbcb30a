"""The attribute model and the segmenter as the configuration says to run them, for every role and command."""

from pathlib import Path

from kloset.core.config import Settings
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.segmenter import Segmenter
from kloset.core.telemetry import Metrics


def load_attribute_model(
    settings: Settings, model_dir: Path | None = None, metrics: Metrics | None = None
) -> AttributeModel:
    """model_dir (else KLOSET_MODEL_DIR) on KLOSET_MODEL_RUNTIME, with KLOSET_MIRROR_VIEW and the batch size;
    its forward passes are timed into metrics (a Program's)."""
    return AttributeModel.load(
        model_dir or settings.model_dir,
        settings.backbone_weights,
        settings.inference_batch_size,
        settings.model_run_options,
        settings.mirror_view,
        metrics,
    )


def load_segmenter(settings: Settings, model_dir: Path | None = None, metrics: Metrics | None = None) -> Segmenter:
    """model_dir (else KLOSET_SEGMENTER_DIR) on KLOSET_MODEL_RUNTIME."""
    directory = model_dir or settings.segmenter_dir
    return Segmenter.load(directory, settings.backbone_weights, settings.model_run_options, metrics)
