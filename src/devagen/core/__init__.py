"""Infrastructure every layer uses: typed config, presets, paths, errors, atomic io, integrity manifests, device and precision, classes, loss meters, MLflow tracking."""
