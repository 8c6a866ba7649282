"""LUCAS evaluation of crop maps: the same-label-within-10-m rule (and nearest matching)."""
