"""The trained model served: the MLflow pyfunc model and drawing on request."""
