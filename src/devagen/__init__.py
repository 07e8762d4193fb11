"""devagen: diffusion models that write handwritten Devanagari characters."""

__version__ = "0.1.0"
