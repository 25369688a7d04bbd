"""`poembot run`, the quick start: one supervised process group (embedded Redis, a worker, the bot) and
the background job that fetches and builds what serving /poem can do without. Above the roles: it starts
them as processes, and imports none of the developer tools.
"""
