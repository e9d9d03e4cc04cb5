"""Data leaving (and entering) in other systems' standard forms."""
