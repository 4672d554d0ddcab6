"""Process and file plumbing every part shares: whole-file writes, the tree lock, workers, Ctrl-C."""
