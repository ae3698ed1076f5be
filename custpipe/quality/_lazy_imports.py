"""Defer the import of modules great_expectations imports but custpipe's suites never use.

Importing great_expectations imports `scipy.stats` (~1 s, with scipy's linalg, optimize,
spatial...) through the modules of three expectations custpipe's suites do not use
(`expect_column_kl_divergence_to_be_less_than` and the two Kolmogorov-Smirnov metrics):
they only bind the name at import (`from scipy import stats`) and call it when such an
expectation is validated. A lazy module stands in for it: the real import runs on the first
attribute read, so anything that does use it gets it unchanged, only later. (`altair`,
imported the same way, cannot be deferred so: `import altair` reads the module's
`__spec__`, which loads it.)
"""

from __future__ import annotations

import importlib.util
import sys

#: imported by great_expectations, used only by expectations custpipe's suites do not have
DEFERRED = ("scipy.stats",)


def is_lazy(module: object) -> bool:
    """True while `module` is a lazy module that was not loaded yet."""
    return isinstance(module, importlib.util._LazyModule)


def defer(name: str) -> bool:
    """Put a lazy module `name` in sys.modules unless it is imported already or not
    installed; returns True when it did. A submodule's package is imported (not deferred)."""
    if name in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # its package is not installed
        return False
    if spec is None or spec.loader is None:
        return False
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system binds a loaded submodule to its package
        setattr(sys.modules[parent], child, module)
    return True


def defer_unused() -> list[str]:
    """Defer every module of DEFERRED; returns those deferred now."""
    return [name for name in DEFERRED if defer(name)]
