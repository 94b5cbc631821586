"""lstm-train: train, evaluate and serve LSTM sequence models from Hydra YAML configs."""

__version__ = "0.1.0"
