"""Built-in synthetic demo study."""
