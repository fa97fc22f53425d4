"""Where metrics go: the terminal, JSONL in the run folder, Ray metrics, TensorBoard, W&B."""
