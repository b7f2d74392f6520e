"""sensors of the Entra provider."""
