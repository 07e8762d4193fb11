"""What people read: the report pages, figures, plots, the model card."""
