"""Tests of app.store (the TaskStore) against the real database."""
