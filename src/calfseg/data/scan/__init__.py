"""Finding the mask (label) files of a folder: by the detected dataset layout, or by suffix."""
