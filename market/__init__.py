"""Shared kernel and application shell of the pledged-IP disposal marketplace."""
