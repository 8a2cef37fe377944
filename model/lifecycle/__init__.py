"""Model lifecycle: the registry, the model card, importing and publishing versions."""
