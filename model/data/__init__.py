"""Face-set data: label validation, file checks, the content-hash split, the decoded-image cache, importers, EDA."""
