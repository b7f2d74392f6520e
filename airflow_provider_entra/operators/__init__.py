"""operators of the Entra provider."""
