"""Deployment: A/B production variants and the scaled-out topology on loopback."""
