"""membermkt."""
