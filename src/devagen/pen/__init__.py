"""The pen: stroke width, ink and slant measures, pen conditions, shear."""
