"""lstm-train: train, evaluate and serve LSTM sequence models from Hydra YAML configs."""

import time

__version__ = "0.1.0"
# When this process imported lstm-train, its first step: start-up times are measured from here.
STARTED_AT = time.time()
