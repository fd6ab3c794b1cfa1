"""Persistence: the artifact store and the metadata database."""
