"""Start a worker: ``python path/to/worker`` (how the runtime starts it) or ``python -m boothby_python.worker``."""

import sys

if __package__:
    from .server import main
else:
    # Started by path, so this folder is sys.path[0]. Load the folder as a package under a private
    # name and take it off sys.path, so that its modules never shadow the function's own modules.
    import importlib.util
    import os

    folder = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0]) == folder:
        del sys.path[0]
    spec = importlib.util.spec_from_file_location(
        "_boothby_python_worker", os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    from _boothby_python_worker.server import main

main()
