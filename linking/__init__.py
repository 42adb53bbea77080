"""spanlink linking package."""
