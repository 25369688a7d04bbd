"""The rules of classical verse: the four forms, 平仄 and rhyme (平水韵, 中华新韵), and script
conversion. Pure Python and small tables; the bot, the model and training all import it.
"""
