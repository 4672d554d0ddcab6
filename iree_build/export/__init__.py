"""Exports of a build's declarations to other build systems (CMake, Bazel).

The SConscripts stay the source of truth: the rules turn what was declared into
the plain data of :mod:`.model` (every path relative to the SCons top folder,
every command exactly as the SCons build runs it), and :mod:`.cmake` and
:mod:`.bazel` write that data as another build system's files. Nothing here
imports SCons.
"""
