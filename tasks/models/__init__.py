"""Neural network architectures (one module per model family) and their registry."""
