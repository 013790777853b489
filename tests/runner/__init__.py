"""Tests of app.runner: one task's run, heartbeats, the sweeper, cancels, loop lag."""
