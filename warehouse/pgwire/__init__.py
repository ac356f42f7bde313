"""The PostgreSQL wire layer of ``tdw serve``: protocol, session commands, catalog, types."""
