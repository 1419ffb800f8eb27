"""The one configuration of the network and its training, shared by numpy_mlp and keras_baseline.

Every default is the article's reference configuration (see ../shared/STUDY.md); values that the
article does not state are marked *assumed* and can be changed here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# the values each text field of MLPConfig may take
CHOICES = {
    "hidden_activation": ("sigmoid", "tanh", "relu"),
    "output_activation": ("sigmoid", "softmax"),
    "loss": ("logloss", "mse"),
    "dtype": ("float32", "float64"),
    "input_scaling": ("standardize", "unit"),
}


@dataclass(frozen=True)
class MLPConfig:
    """Network and training of the study.

    Attributes
    ----------
    layer_sizes : inputs, hidden layers..., outputs. Default 784-70-30-10 (hidden sizes *assumed*).
    hidden_activation : 'sigmoid' (article), 'tanh' or 'relu'.
    output_activation : 'sigmoid' (article) or 'softmax'.
    loss : 'logloss' (article: binary cross-entropy per output node, summed over nodes and samples;
        with a softmax output it is the categorical cross-entropy) or 'mse' (0.5 * squared error,
        summed the same way).
    learning_rate : initial rate; None means the article's rate for the batch size (``lr_for``).
    lr_decay : at the start of epoch i (0-based) lr = lr / (1 + lr_decay * i).
    momentum : the article's one-step rule, W -= lr*g + momentum * previous (lr*g). *assumed* value.
    l2, l1 : regularization of kernels only (no bias): cost += l2/2 sum W^2 + l1 sum |W|.
    init_scale : weights uniform in [-init_scale/sqrt(n_in), +init_scale/sqrt(n_in)], biases too.
        *assumed* (the article is silent; why 2.0: docs/method.md, "The network and its training").
    input_scaling : 'standardize' per pixel on the training set (*assumed* default) or 'unit' (x/255).
    dtype : 'float32' (after the article's step I) or 'float64'.
    """

    layer_sizes: tuple[int, ...] = (784, 70, 30, 10)
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    loss: str = "logloss"
    learning_rate: float | None = None
    lr_decay: float = 1e-6
    momentum: float = 5e-5
    l2: float = 0.2
    l1: float = 0.0
    init_scale: float = 2.0
    input_scaling: str = "standardize"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        sizes = tuple(self.layer_sizes)
        object.__setattr__(self, "layer_sizes", sizes)
        if len(sizes) < 2 or any(not isinstance(n, int) or n <= 0 for n in sizes):
            raise ValueError(f"layer_sizes must be at least two positive integers, got {sizes}")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(choices)}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("lr_decay", "momentum", "l2", "l1", "init_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def lr_for(self, batch_size: int) -> float:
        """The initial learning rate at this batch size: ``learning_rate``, or the article's min(1e-3, 2 / batch_size).

        The article prints 1e-3 for batch 500 and 1e-4 for batch 20000; since its gradient is summed over
        the batch, a rate that shrinks like 1/batch_size above 2000 keeps the step (rate x batch) at the
        article's 2.0 for big batches and gives both printed values exactly.
        """
        return self.learning_rate if self.learning_rate is not None else min(1e-3, 2.0 / batch_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MLPConfig":
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown MLPConfig fields: {sorted(unknown)}")
        return cls(**data)


def lr_schedule(initial_lr: float, lr_decay: float, epochs: int) -> list[float]:
    """Learning rate in effect during each epoch (the article's decay, applied at each epoch start)."""
    rates, lr = [], initial_lr
    for epoch in range(epochs):
        lr = lr / (1.0 + lr_decay * epoch)
        rates.append(lr)
    return rates
