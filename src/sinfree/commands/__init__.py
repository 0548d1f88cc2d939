"""``sinfree`` subcommands kept in their own modules; each has ``register(app)``."""
