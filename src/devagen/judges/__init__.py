"""Judges of generated characters: the OCR judge, legibility, style space, C2ST, CAS, FID/KID/PR."""
