# nets.py: any mindspore.nn.Cell. Constructor arguments named num_classes, in_features, in_channels or
# input_shape are filled in from the data unless init_args sets them.
import mindspore.nn as nn
from mindspore import ops

from openmindspore.models import Dropout  # dropout keyed by (seed, step, sample): resume stays bitwise exact


class TinyNet(nn.Cell):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 32):
        super().__init__()
        self.hidden = nn.Dense(in_features, hidden)
        self.drop = Dropout(0.1)
        self.out = nn.Dense(hidden, num_classes)

    def construct(self, x):
        return self.out(self.drop(ops.relu(self.hidden(x))))
