"""One registry class for the library's name -> class tables (optimizers, schedules, problems).

    OPTIMIZERS = Registry("optimizer")
    @OPTIMIZERS.register("adam")
    class Adam(Optimizer): ...
    OPTIMIZERS.create("adam", lr=1e-3); OPTIMIZERS.names()

A registered class gets ``cls.name``; if it carries a ``paper`` dict (title,
authors, year, arxiv, family) it is also entered in :mod:`reference.catalog`
as an implementation, so the catalog cannot drift from the code. Unknown
names raise ``KeyError`` listing the valid ones.
"""
from __future__ import annotations

from . import catalog

__all__ = ["Registry"]


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._classes = {}

    def register(self, name):
        """Class decorator adding the class under ``name``."""

        def deco(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            cls.name = name
            self._classes[name] = cls
            paper = getattr(cls, "paper", None)
            if paper:
                catalog.register(name=name, module=cls.__module__, kind="implementation", **paper)
            return cls

        return deco

    def names(self):
        """Every registered name, sorted."""
        return sorted(self._classes)

    def get(self, name):
        """The class registered as ``name``."""
        if name not in self._classes:
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}")
        return self._classes[name]

    def create(self, name, **kw):
        """An instance of ``name`` built with ``kw``."""
        return self.get(name)(**kw)

    def __contains__(self, name):
        return name in self._classes
