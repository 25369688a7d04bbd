"""What the bot keeps in Redis, one small store per concern, each over the process's one client:
limits (admission), deliveries (who sends a reply), poems (and the messages that show them), users
(history, likes, settings), subscribers (the daily poem), the style registry's cache, the update intake,
the workers' presence, and the bot's consumer groups. bot.state.State wires them together.

Every key name, TTL and cap comes from protocol.keys; every replica shares this state.
"""
