"""Running YOLO weights: loading and versioning them, runtimes (PyTorch, OpenVINO), threads, outputs, tracking."""
