"""Tests of the native library binding (app.native) against the real built library."""
