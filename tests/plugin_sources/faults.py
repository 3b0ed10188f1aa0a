"""Fault models for the reliability tests: normal on the meta device (the dry run), faulty for real."""

import os
import signal
import time

import torch

import benchbench


class Fault(torch.nn.Module):
    """Linear layer that misbehaves on real (not meta) tensors, as `how` says."""

    def __init__(self, how: str = "none", seconds: float = 60.0) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.how, self.seconds, self.calls = how, seconds, 0

    def forward(self, x):
        if x.device.type != "meta":
            self.calls += 1
            if self.how == "slow_later" and self.calls > 1:  # interruptible: Python code between short sleeps
                end = time.monotonic() + self.seconds
                while time.monotonic() < end:
                    time.sleep(0.01)
            elif self.how == "stuck":  # not interruptible from inside: only a kill ends it
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM, signal.SIGINT])
                time.sleep(self.seconds)
            elif self.how == "segfault":
                os.kill(os.getpid(), signal.SIGSEGV)
            elif self.how == "oom":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
            elif self.how == "crash_if_env" and os.environ.get("BB_CRASH") == "1":
                os.kill(os.getpid(), signal.SIGKILL)
            elif self.how == "exit":  # a model that ends the process its own way
                raise SystemExit(0)
            elif self.how == "stuck_pid":  # records its pid, then hangs where only a kill ends it
                with open(os.environ["BB_PID_FILE"], "w") as handle:
                    handle.write(str(os.getpid()))
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM, signal.SIGINT, signal.SIGTERM])
                time.sleep(self.seconds)
            elif self.how == "item":  # data-dependent: cannot run on meta, fine for real
                x = x * float(x.sum().item() > -1e9)
        elif self.how == "item":
            x.sum().item()  # raises on meta: the dry run must not call that a suite error
        return self.linear(x)


@benchbench.hookimpl
def benchbench_register_models(register):
    register("fault", Fault, family="toy", input_shape=(4,), description="misbehaves on purpose")
