"""reference: readable, verified reference implementations of gradient-based training algorithms.

Subpackages: ``backend`` (NumPy/CuPy), ``tree`` (params-dict helpers),
``autograd`` (from scratch), ``nn`` (small models), ``problems`` (synthetic
test problems). See README.md and ARCHITECTURE.md for the public contract.
"""
__version__ = "0.1.0"
