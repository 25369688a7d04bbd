"""poembot's Telegram process: parses requests, enqueues jobs, delivers results.

It never imports TensorFlow; it talks to the model only through protocol.jobs and Redis.
"""
