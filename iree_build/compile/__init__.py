"""What a module's compile is: its plan (:mod:`iree_build.compile.plan`)."""
