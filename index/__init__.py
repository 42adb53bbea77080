"""spanlink index package."""
