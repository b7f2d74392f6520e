"""triggers of the Entra provider."""
