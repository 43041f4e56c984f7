"""The local history store: SQLite (WAL) series and events for the dashboard and exports."""
