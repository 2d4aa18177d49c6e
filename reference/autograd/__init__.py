"""A reverse- and forward-mode autograd written from scratch, readable in one sitting.

Start with ``tensor.py`` (the engine: Tensor, how an op is applied, the two
sweeps), then ``ops.py`` (every op and its derivative rules, side by side),
then ``functional.py`` (``grad``, ``jvp``, ``hvp``, ...). ``check.py`` is
the numeric gradient checker the tests use.

    from reference import autograd as ag
    g = ag.grad(loss)(params, x, y)            # same structure as params
    y, t = ag.jvp(f, (x,), (v,))               # forward mode, no backward pass
    hv = ag.hvp(loss, params, v, x, y)         # Hessian-vector product
"""
from .tensor import Tensor, no_record
from .ops import (
    abs, add, avg_pool2d, binary_cross_entropy_with_logits, broadcast_to, clip, concatenate, conv2d, cos,
    cross_entropy, divide, dropout, erf, exp, expand_dims, gelu, getitem, identity, log, log1p, log_softmax,
    logsumexp, matmul, max, max_pool2d, maximum, mean, min, minimum, mse_loss, multiply, negative, power,
    relu, reshape, sigmoid, sin, softmax, softplus, sqrt, square, squeeze, stack, stop_gradient, subtract,
    sum, sum_to, tanh, transpose, where,
)
from .functional import grad, hessian, hvp, jacobian, jvp, per_example_grads, value_and_grad, vjp
from .check import check_grads, numeric_grad, numeric_jvp, relative_error

__all__ = [
    "Tensor", "no_record", "grad", "value_and_grad", "vjp", "jvp", "hvp", "jacobian", "hessian",
    "per_example_grads", "check_grads", "numeric_grad", "numeric_jvp", "relative_error",
    "abs", "add", "avg_pool2d", "binary_cross_entropy_with_logits", "broadcast_to", "clip", "concatenate",
    "conv2d", "cos", "cross_entropy", "divide", "dropout", "erf", "exp", "expand_dims", "gelu", "getitem",
    "identity", "log", "log1p", "log_softmax", "logsumexp", "matmul", "max", "max_pool2d", "maximum", "mean",
    "min", "minimum", "mse_loss", "multiply", "negative", "power", "relu", "reshape", "sigmoid", "sin",
    "softmax", "softplus", "sqrt", "square", "squeeze", "stack", "stop_gradient", "subtract", "sum",
    "sum_to", "tanh", "transpose", "where",
]
