"""Networks trained apart that answer together (`trainer.refit=average`): a classifier's
members average their class probabilities, any other's their outputs.

Two networks from different starting points err on different sequences; their mean is
steadier than either (measured on the panel: see `trainer.refit` in conf/train.yaml). The
averaged network returns what one network does, so evaluation, prediction and export read
it unchanged: means for outputs, and for a classifier the log of the mean probabilities,
whose softmax is that mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from lstm_cli.model.network import CarriedState, LSTMNetwork, ModelSpec


class AveragedNetwork(nn.Module):
    """`members` answering together; `spec` is theirs with `members` and `averages` set."""

    def __init__(self, members: Sequence[LSTMNetwork], spec: ModelSpec) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.spec = spec

    @classmethod
    def of(cls, members: Sequence[LSTMNetwork], classifies: bool) -> AveragedNetwork:
        averages = "probabilities" if classifies else "outputs"
        return cls(members, replace(members[0].spec, members=len(members), averages=averages))

    def forward(self, x: Tensor, lengths: Tensor, carried: CarriedState | None = None) -> Tensor:
        if carried is not None:
            raise ValueError("averaged networks do not carry state from chunk to chunk")
        outputs = torch.stack([member(x, lengths) for member in self.members])
        if self.spec.averages == "probabilities":
            return torch.logsumexp(outputs.log_softmax(-1), dim=0) - math.log(len(self.members))
        return outputs.mean(dim=0)


Network = LSTMNetwork | AveragedNetwork


def build_network(spec: ModelSpec, packed: bool = False) -> Network:
    """The (untrained) network a checkpoint's spec describes: one, or its members averaged."""
    if spec.members == 1:
        return LSTMNetwork(spec, packed)
    member = replace(spec, members=1, averages="outputs")
    return AveragedNetwork([LSTMNetwork(member, packed) for _ in range(spec.members)], spec)
