"""hooks of the Entra provider."""
