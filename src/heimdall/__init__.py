"""Heimdall: locate a radio transmitter from what a network of receivers heard of it."""

__version__ = "0.1.0"
