"""Continuo's Discord bot: continues text in each server's voice and learns one model per server."""
