"""SCons tool file for ``Environment(tools=["default", "iree_tool"], toolpath=[iree_rules.TOOLPATH])``.

Named ``iree_tool``, not ``iree``: SCons registers a tool module under its own
name in ``sys.modules``, and ``iree`` is the IREE packages' namespace.
"""

from iree_rules.iree import exists, generate  # noqa: F401
