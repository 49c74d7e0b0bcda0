"""A small reference CNN for SynthFaces audits (3 conv blocks, global pooling)."""

from __future__ import annotations

import torch
from torch import nn


class SynthFacesCNN(nn.Module):
    """conv1-bn-relu-pool, conv2-bn-relu-pool, conv3-bn-relu, global mean, linear.

    `conv1` sees the raw image, so its kernel size decides which spatial
    frequencies the first features can resolve: the layer an audit intervenes on.
    """

    def __init__(self, width: int = 32, num_classes: int = 2, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.conv3 = nn.Conv2d(2 * width, 2 * width, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))
