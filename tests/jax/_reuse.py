"""Re-collect another test module's tests in a tests/jax module.

New backend-neutral tests in the TensorFlow-side modules then run on JAX
automatically; the TensorFlow-only ones are named in `exclude` with the
reason next to them at the call site.
"""

import importlib


def reuse_tests(module_name: str, namespace: dict, exclude=()) -> list[str]:
    """Copy every `test_*` function of `module_name` except `exclude` into `namespace`."""
    module = importlib.import_module(module_name)
    names = [n for n in vars(module) if n.startswith("test_") and callable(getattr(module, n)) and n not in exclude]
    for name in names:
        namespace[name] = getattr(module, name)
    return names
