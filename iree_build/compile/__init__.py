"""Compiling a module: its plan, the compile workers and their pool, the compiler's facts,
the files a module depends on (scan) and readable diagnostics."""
