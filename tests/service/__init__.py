"""Tests of app.service: waits (long-poll, event streams) and signed callbacks."""
