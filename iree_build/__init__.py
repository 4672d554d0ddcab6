"""iree_build: the engine behind the IREE SCons rules.

Importable without SCons. The compile side (``targets``, ``compile``) talks to
the IREE compiler through worker processes; the ``testing`` package runs built
modules with ``iree.runtime`` alone, so a built tree can be tested on a machine
that has only the runtime.
"""

__version__ = "0.1.0"
