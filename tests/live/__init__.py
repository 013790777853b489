"""Tests of app.live: the Redis keys monitors read, the update messages across replicas."""
