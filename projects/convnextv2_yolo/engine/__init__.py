from . import hooks, optimizers, runner  # noqa: F401
