import pytest
import torch
from torch import nn


def tiny_cnn() -> nn.Module:
    """A two-conv CNN small enough to train in well under a second per epoch."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2),
    )


@pytest.fixture
def cnn_factory():
    return tiny_cnn


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)
