"""Tests of app.api: the REST contract, the route table's edges, the edge parsers."""
