"""Tests of app.core: settings, the database layer, group commits, migrations, embedded Redis."""
