"""The results page: tests and benchmarks of a build folder in one self-contained HTML file."""
