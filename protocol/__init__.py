"""What the bot and the worker share: job and result messages, every Redis key with its TTL or bound,
the Redis client factory, paths and logging. Both sides import it; it imports neither.
"""
