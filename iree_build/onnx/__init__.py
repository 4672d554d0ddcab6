"""ONNX models as build inputs: import policy, the import step, and test-case folders."""
