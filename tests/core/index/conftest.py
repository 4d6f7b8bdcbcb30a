"""A second tiny model: trained like tests/conftest.py's but with another seed, so another version (a model
change a reindex is for)."""

from pathlib import Path

import pytest

from tests.conftest import TINY_INPUT_SIZE


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory, sample_catalog) -> Path:
    from kloset.core.models.training import extract_features, train_heads

    out = tmp_path_factory.mktemp("model2")
    features = extract_features(sample_catalog, TINY_INPUT_SIZE, None, None)
    train_heads(features, input_size=TINY_INPUT_SIZE, out_dir=out, epochs=5, seed=7, source="sample")
    return out
