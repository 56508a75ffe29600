"""The web layer: the job routes and health checks, who may call them, what they answer."""
