"""Training: profiles, augmentation, batches, the feature cache and the fit loop."""
