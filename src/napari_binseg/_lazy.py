"""Lazy public namespaces: submodules load on first attribute access (PEP 562)."""

from importlib import import_module


def attach(package, api):
    """Return ``__getattr__``, ``__dir__`` and ``__all__`` for a package exporting ``api``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    api : dict
        Exported name -> submodule (relative to ``package``) that defines it.
    """
    names = sorted(api)

    def __getattr__(name):
        if name in api:
            value = getattr(import_module(f".{api[name]}", package), name)
            setattr(import_module(package), name, value)  # later look-ups skip this function
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(names) | set(vars(import_module(package))))

    return __getattr__, __dir__, names
