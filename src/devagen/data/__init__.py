"""The dataset: fetching the DHCD archive, prepared arrays, augmentation, lineage."""
