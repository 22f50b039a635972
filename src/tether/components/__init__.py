"""Components: one small async contract per building block, one module per backend."""
