"""Two tiny models, {prefix}scale and {prefix}broken: copied with a prefix, so several copies can load at once."""

import torch

import benchbench


class Scale(torch.nn.Module):
    """Multiplies by a learnable scalar; `work` repeats the op to make it slower."""

    def __init__(self, features: int = 4, work: int = 1) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, features)
        self.work = work

    def forward(self, x):
        for _ in range(self.work):
            x = self.linear(x)
        return x


class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("this model always fails")


@benchbench.hookimpl
def benchbench_register_models(register):
    register("{prefix}scale", Scale, family="toy", input_shape=(4,), description="a tiny linear model")
    register("{prefix}broken", Broken, family="toy", input_shape=(4,), description="raises in forward")
