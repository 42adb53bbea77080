"""spanlink api package."""
